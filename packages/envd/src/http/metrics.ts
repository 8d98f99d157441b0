// GET /metrics: the capsule's CPU, memory and disk usage (E2B envd `Metrics` schema).

import { MetricsCollector } from '../metrics/collect.js';
import type { EnvdState } from '../state.js';
import { sendJson } from './respond.js';
import type { Route } from './router.js';

export function metricsRoutes(_state: EnvdState): Route[] {
  let collector: MetricsCollector | undefined;
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: async (_req, res) => {
        collector ??= new MetricsCollector();
        const metrics = await collector.collect();
        res.setHeader('cache-control', 'no-store');
        sendJson(res, 200, metrics);
      },
    },
  ];
}
