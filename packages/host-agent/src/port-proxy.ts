// The agent's HTTP endpoint into capsule ports: /proxy/<capsuleId>/<port>/<path>.
// The control plane's sandbox proxy forwards here when the capsule lives on this host.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { SandboxManager } from './manager/manager.js';
import { createProxyAgent, forwardHttp, forwardUpgrade } from './proxy/forward.js';
import {
  type GuestFailure,
  guestErrorResponse,
  proxyFailure,
  sandboxNotFound,
  sendGuestError,
} from './proxy/guest-errors.js';

const ROUTE = /^\/proxy\/(cl-[0-9a-z]+)\/(\d{1,5})(\/.*)?$/;

export interface PortProxy {
  handles(url: string): boolean;
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

export function createPortProxy(manager: SandboxManager): PortProxy {
  const agent = createProxyAgent();
  const resolve = (url: string) => {
    const q = url.indexOf('?');
    const pathname = q >= 0 ? url.slice(0, q) : url;
    const m = ROUTE.exec(pathname);
    if (!m) return undefined;
    const [, id = '', portText = '', rest = '/'] = m;
    return {
      id,
      port: Number(portText),
      path: rest + (q >= 0 ? url.slice(q) : ''),
      prefix: `/proxy/${id}/${portText}`,
    };
  };
  const check = (r: NonNullable<ReturnType<typeof resolve>>): GuestFailure | { address: string } => {
    if (r.port < 1 || r.port > 65535) return proxyFailure(400, `port ${r.port} is out of range (1-65535)`);
    const rec = manager.list().find((c) => c.id === r.id);
    if (!rec) return sandboxNotFound(r.id, `capsule ${r.id} is not on this host`);
    if (rec.state !== 'running')
      return sandboxNotFound(r.id, `capsule ${r.id} is ${rec.state}; resume it to reach its ports`);
    return { address: rec.address };
  };
  return {
    handles: (url) => url.startsWith('/proxy/'),
    handle(req, res) {
      const r = resolve(req.url ?? '/');
      if (!r) return sendGuestError(res, proxyFailure(400, 'expected /proxy/<capsuleId>/<port>/<path>'));
      const c = check(r);
      if (!('address' in c)) return sendGuestError(res, c);
      const guest = { sandboxId: r.id, port: r.port };
      forwardHttp(
        req,
        res,
        { host: c.address, port: r.port, path: r.path },
        { agent, locationPrefix: r.prefix, guest },
      );
    },
    upgrade(req, socket, head) {
      const r = resolve(req.url ?? '/');
      const c = r ? check(r) : undefined;
      if (!r || !c || !('address' in c)) {
        const f = c && !('address' in c) ? c : proxyFailure(400, 'expected /proxy/<capsuleId>/<port>/<path>');
        socket.end(guestErrorResponse(f, f.status === 502 ? 'Bad Gateway' : 'Bad Request'));
        return;
      }
      const guest = { sandboxId: r.id, port: r.port };
      forwardUpgrade(req, socket, head, { host: c.address, port: r.port, path: r.path }, { guest });
    },
    close: () => agent.destroy(),
  };
}
