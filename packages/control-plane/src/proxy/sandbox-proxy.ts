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
  // Open proxied exchanges per capsule: when the capsule goes, its connections go too (a vanished
  // namespace never sends a FIN, so they would otherwise hang until TCP keepalive gives up).
  const open = new Map<string, Set<{ destroy(): void }>>();
  const track = (id: string, conn: { destroy(): void; once(ev: 'close', fn: () => void): unknown }) => {
    let set = open.get(id);
    if (!set) open.set(id, (set = new Set()));
    set.add(conn);
    conn.once('close', () => {
      set.delete(conn);
      if (set.size === 0 && open.get(id) === set) open.delete(id);
    });
  };

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
          track(route.capsuleId, res);
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
          track(route.capsuleId, socket);
          forwardUpgrade(req, socket, head, t.target);
        },
        () => socket.destroy(),
      );
      return true;
    },
    evict(id) {
      targets.evict(id);
      const conns = open.get(id);
      if (!conns) return;
      // Only when the capsule is gone for good: a pause also evicts, and its streams may resume.
      void ctx.database.db
        .selectFrom('capsules')
        .select('state')
        .where('id', '=', id)
        .executeTakeFirst()
        .then((row) => {
          if (!row || row.state === 'stopped' || row.state === 'error') for (const c of conns) c.destroy();
        })
        .catch(() => undefined);
    },
    close: () => agent.destroy(),
  };
}
