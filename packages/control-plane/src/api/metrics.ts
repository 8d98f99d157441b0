// Prometheus metrics of the control plane at GET /metrics: HTTP requests (all of them, counted at
// the HTTP server so sandbox-proxy traffic is included) and capsules by state from the database.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ControlPlaneContext } from '../context.js';
import { CAPSULE_STATES, countCapsulesByState } from '../db/repositories/capsules.js';

/** Which part of the control plane a request went to, from its path and headers (low cardinality). */
export function surfaceOf(req: IncomingMessage, domain: string): string {
  const url = req.url ?? '/';
  const host = (req.headers.host ?? '').toLowerCase();
  if (
    req.headers['e2b-sandbox-id'] ||
    url.startsWith('/proxy/') ||
    (domain && /^\d+-cl-/.test(host) && host.includes(domain))
  )
    return 'proxy';
  if (url.startsWith('/v1/')) return 'native';
  if (url.startsWith('/metrics') || url.startsWith('/docs') || url.startsWith('/openapi') || url.startsWith('/test'))
    return 'meta';
  return 'e2b';
}

/**
 * How often the event-loop lag is sampled (the agent's metrics use the same). Each sample is a
 * wake-up of the whole process: at 100 ms the two registries of a `wrenn up` process woke it ~20
 * times a second, which on a host where a wake-up costs 1-3 ms of CPU (nested virtualization) was
 * most of an idle stack's CPU. Once a second, a stall shows when it spans a sample.
 */
export const EVENT_LOOP_SAMPLE_MS = 1_000;

export interface ControlPlaneMetrics {
  registry: Registry;
}

/** Sets up the registry, instruments the HTTP server and adds GET /metrics to `app`. */
export function registerMetrics(app: FastifyInstance, ctx: ControlPlaneContext): ControlPlaneMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ svc: 'control-plane' });
  // The event-loop lag histogram samples on a timer; prom-client's default (every 10 ms) is 100
  // wake-ups a second of an otherwise idle process; see EVENT_LOOP_SAMPLE_MS.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });

  const requests = new Counter({
    name: 'wrenn_http_requests_total',
    help: 'HTTP requests answered, by surface (native, e2b, proxy, meta), method and status',
    labelNames: ['surface', 'method', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'wrenn_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by surface and method',
    labelNames: ['surface', 'method'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const routeLatency = new Histogram({
    name: 'wrenn_api_route_duration_seconds',
    help: 'Native API handling time by route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'wrenn_capsules',
    help: 'Capsules by state, from the database',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await countCapsulesByState(ctx.database.db);
      for (const s of CAPSULE_STATES) this.set({ state: s }, counts[s] ?? 0);
    },
  });

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const start = process.hrtime.bigint();
    const surface = surfaceOf(req, ctx.config.domain);
    res.once('close', () => {
      const method = req.method ?? 'GET';
      requests.inc({ surface, method, status: String(res.statusCode) });
      latency.observe({ surface, method }, Number(process.hrtime.bigint() - start) / 1e9);
    });
  };
  app.server.on('request', onRequest);
  app.addHook('onClose', async () => {
    app.server.off('request', onRequest);
  });
  app.addHook('onResponse', async (req, reply) => {
    routeLatency.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
  return { registry };
}
