// HTTP/2 names a request's host twice when a client sends both `:authority` and a `host` field.
// Routing (sandbox proxy) reads `:authority`; a request whose two names differ could be routed by
// one and checked by the other, so it is refused (RFC 9113 8.3.1 lets a server treat it as malformed).
import type http from 'node:http';

/** The host an HTTP/2 request names (`:authority`, else `host`); the `host` field for HTTP/1.x. */
export function requestAuthority(req: http.IncomingMessage): string | undefined {
  const h = req.headers;
  const authority = req.httpVersionMajor === 2 ? h[':authority'] : undefined;
  const v = authority ?? h.host;
  return Array.isArray(v) ? v[0] : v;
}

export function conflictingAuthority(req: http.IncomingMessage): boolean {
  if (req.httpVersionMajor !== 2) return false;
  const authority = req.headers[':authority'];
  const host = req.headers.host;
  return typeof authority === 'string' && typeof host === 'string' && authority.toLowerCase() !== host.toLowerCase();
}

export function refuseConflictingAuthority(res: http.ServerResponse): void {
  const body = JSON.stringify({
    error: { code: 'invalid_argument', message: ':authority and host name different hosts; send one of them' },
  });
  res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
