// The agent's HTTP endpoint into capsule ports: /proxy/<capsuleId>/<port>/<path>.
// The control plane's sandbox proxy forwards here when the capsule lives on this host.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { SandboxManager } from './manager/manager.js';
import { createProxyAgent, forwardHttp, forwardUpgrade } from './proxy/forward.js';

const ROUTE = /^\/proxy\/(cl-[0-9a-z]+)\/(\d{1,5})(\/.*)?$/;

export interface PortProxy {
  handles(url: string): boolean;
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
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
  const check = (
    r: NonNullable<ReturnType<typeof resolve>>,
  ): { status: number; code: string; message: string } | { address: string } => {
    if (r.port < 1 || r.port > 65535)
      return { status: 400, code: 'invalid_argument', message: `port ${r.port} is out of range` };
    const rec = manager.list().find((c) => c.id === r.id);
    if (!rec) return { status: 404, code: 'not_found', message: `capsule ${r.id} not found on this host` };
    if (rec.state !== 'running')
      return {
        status: 409,
        code: 'failed_precondition',
        message: `capsule ${r.id} is ${rec.state}; resume it to reach its ports`,
      };
    return { address: rec.address };
  };
  return {
    handles: (url) => url.startsWith('/proxy/'),
    handle(req, res) {
      const r = resolve(req.url ?? '/');
      if (!r) return sendError(res, 400, 'invalid_argument', 'expected /proxy/<capsuleId>/<port>/<path>');
      const c = check(r);
      if (!('address' in c)) return sendError(res, c.status, c.code, c.message);
      forwardHttp(req, res, { host: c.address, port: r.port, path: r.path }, { agent, locationPrefix: r.prefix });
    },
    upgrade(req, socket, head) {
      const r = resolve(req.url ?? '/');
      const c = r ? check(r) : undefined;
      if (!r || !c || !('address' in c)) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      forwardUpgrade(req, socket, head, { host: c.address, port: r.port, path: r.path });
    },
    close: () => agent.destroy(),
  };
}
