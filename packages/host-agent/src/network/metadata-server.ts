// The capsule metadata endpoint, like Firecracker's MMDS: inside a capsule,
// http://169.254.169.254/ reaches this server (the host firewall REDIRECTs it to `port` on the host
// side of the capsule's own veth) and the capsule is identified by its source address.
//
//   GET /                        Accept: application/json -> {"WRENN_SANDBOX_ID": "...", ...}
//                                otherwise                -> the key names, one per line
//   GET /<KEY>, GET /latest/<KEY>                         -> the value as text/plain (404 if unknown)
//   PUT /latest/api/token                                 -> a session token, for MMDS-V2-style
//                                clients; tokens are accepted but not required (the source address,
//                                which rp_filter and the firewall pin to one capsule, is the identity)

import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type MetadataLookup = (remoteAddress: string) => Record<string, string> | undefined;

export interface MetadataServer {
  port: number;
  close(): Promise<void>;
}

export async function startMetadataHttpServer(opts: {
  port: number;
  host?: string;
  lookup: MetadataLookup;
}): Promise<MetadataServer> {
  const server: Server = createServer((req, res) => {
    const values = opts.lookup(req.socket.remoteAddress ?? '');
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (!values) return send(403, 'not a capsule of this host\n');
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    if (req.method === 'PUT' && path === '/latest/api/token') return send(200, randomBytes(24).toString('base64url'));
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET is supported\n');
    if (path === '/' || path === '/latest') {
      if ((req.headers.accept ?? '').includes('application/json')) {
        return send(200, JSON.stringify(values), 'application/json');
      }
      return send(200, `${Object.keys(values).join('\n')}\n`);
    }
    const key = decodeURIComponent(path.replace(/^\/latest\//, '/').slice(1));
    const v = Object.hasOwn(values, key) ? values[key] : undefined;
    return v === undefined ? send(404, `no metadata key "${key}"\n`) : send(200, v);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new Error(`metadata server: port ${opts.port} is in use (set WRENN_METADATA_PORT to a free port)`)
          : e,
      ),
    );
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
