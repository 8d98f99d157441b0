// GET/POST /files (stub until implemented).
import type { EnvdState } from '../state.js';
import type { Route } from './router.js';

export function fileRoutes(_state: EnvdState): Route[] {
  return [];
}
