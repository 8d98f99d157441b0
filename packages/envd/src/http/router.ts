// Routes the envd REST surface (/health, /init, /envs, /metrics, /files) by method and path.

import { tokenMatches } from '../auth.js';
import type { EnvdState } from '../state.js';
import { HttpError, type Req, type Res, sendError } from './respond.js';

export type RouteHandler = (req: Req, res: Res, url: URL) => Promise<void> | void;

export interface Route {
  method: string;
  path: string;
  /** Routes that answer without the access token (health). */
  public?: boolean;
  /** Routes that may authenticate with a signed URL instead (files); they check the token themselves. */
  selfAuth?: boolean;
  handler: RouteHandler;
}

export function createHttpRouter(state: EnvdState, routes: Route[]) {
  const table = new Map<string, Route>();
  for (const r of routes) table.set(`${r.method} ${r.path}`, r);
  return async function handle(req: Req, res: Res): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://envd');
    const route = table.get(`${req.method} ${url.pathname}`);
    if (!route) {
      const known = routes.some((r) => r.path === url.pathname);
      sendError(
        res,
        known ? 405 : 404,
        known ? `method ${req.method} not allowed on ${url.pathname}` : `no route ${url.pathname}`,
      );
      return;
    }
    if (!route.public && !route.selfAuth && !tokenMatches(state, headerValue(req, 'x-access-token'))) {
      sendError(res, 401, 'missing or wrong X-Access-Token');
      return;
    }
    try {
      await route.handler(req, res, url);
    } catch (err) {
      if (res.headersSent) {
        res.destroy(err as Error);
        return;
      }
      if (err instanceof HttpError) sendError(res, err.status, err.message);
      else sendError(res, 500, err instanceof Error ? err.message : String(err));
    }
  };
}

export function headerValue(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
