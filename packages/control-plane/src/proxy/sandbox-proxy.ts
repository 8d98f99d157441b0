// The sandbox proxy: carries browser and SDK traffic to port P of a capsule. It routes by, in
// order, the headers E2b-Sandbox-Id + E2b-Sandbox-Port, the host name P-<id>.<domain>, and the path
// prefix /proxy/<id>/<P>/. It has its own HTTP/1.1 keep-alive pool, never the agents' RPC pool.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { createProxyAgent, forwardHttp, forwardUpgrade, type ProxyTarget } from '@wrenn/host-agent/proxy/forward';
import type { ControlPlaneContext } from '../context.js';
import { resolveRoute, type ProxyRoute } from './route.js';
import { ProxyTargets } from './targets.js';

export interface SandboxProxy {
  /** Handles the request when it is for a capsule; false lets the API have it. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  evict(capsuleId: string): void;
  close(): void;
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function createSandboxProxy(ctx: ControlPlaneContext): SandboxProxy {
  const agent = createProxyAgent();
  const targets = new ProxyTargets(ctx);

  async function target(route: ProxyRoute): Promise<{ target: ProxyTarget; locationPrefix?: string } | { status: number; code: string; message: string }> {
    const found = await targets.lookup(route.capsuleId, route.port);
    if ('status' in found) return found;
    // Path routing keeps the /proxy/<id>/<P> prefix on redirects; header and host routing do not.
    const locationPrefix = route.kind === 'path' ? route.prefix : undefined;
    return { target: { host: found.host, port: found.port, path: found.pathPrefix + route.path }, locationPrefix };
  }

  return {
    handle(req, res) {
      const route = resolveRoute(req, ctx.config.domain);
      if (!route) return false;
      target(route).then(
        (t) => {
          if ('status' in t) return sendError(res, t.status, t.code, t.message);
          forwardHttp(req, res, t.target, { agent, locationPrefix: t.locationPrefix, attempts: 3, backoffMs: 100 });
        },
        (err: unknown) => sendError(res, 502, 'bad_gateway', `proxy failed: ${err instanceof Error ? err.message : String(err)}`),
      );
      return true;
    },
    handleUpgrade(req, socket, head) {
      const route = resolveRoute(req, ctx.config.domain);
      if (!route) return false;
      target(route).then(
        (t) => {
          if ('status' in t) {
            socket.end(`HTTP/1.1 ${t.status} ${t.code}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify({ error: { code: t.code, message: t.message } })}`);
            return;
          }
          forwardUpgrade(req, socket, head, t.target);
        },
        () => socket.destroy(),
      );
      return true;
    },
    evict: (id) => targets.evict(id),
    close: () => agent.destroy(),
  };
}
