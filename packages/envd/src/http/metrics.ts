// GET /metrics (stub until implemented).
import type { EnvdState } from '../state.js';
import type { Route } from './router.js';

export function metricsRoutes(_state: EnvdState): Route[] {
  return [];
}
