// Checks the credential on every request to the host agent before any work is done: RPCs carry
// `Authorization: Bearer <secret>` (or the X-Wrenn-Agent-Secret header); the port proxy routes
// (/proxy/...) carry only X-Wrenn-Agent-Secret, because their Authorization header belongs to the
// capsule's server (envd reads its user from it) and must not be taken or leaked. The comparison
// is of SHA-256 digests with timingSafeEqual, so neither length nor content leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';

export const AGENT_SECRET_HEADER = 'x-wrenn-agent-secret';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export interface RequestAuth {
  /** True when the request carries the secret. `proxyRoute`: only the dedicated header counts. */
  allows(headers: http.IncomingHttpHeaders, proxyRoute: boolean): boolean;
  /** Answers 401 in Connect's error shape (code "unauthenticated"), which Connect clients map to Code.Unauthenticated. */
  refuse(res: http.ServerResponse): void;
  /** The same for an upgrade request, on the raw socket. */
  refuseUpgrade(socket: Duplex): void;
}

export function createRequestAuth(secret: string, where: string): RequestAuth {
  const want = digest(secret);
  const matches = (v: string | string[] | undefined) => typeof v === 'string' && timingSafeEqual(digest(v), want);
  const message = `the host agent needs its secret: send "Authorization: Bearer <secret>" (${AGENT_SECRET_HEADER} on /proxy routes); the secret is ${where}`;
  const body = JSON.stringify({ code: 'unauthenticated', message });
  return {
    allows(headers, proxyRoute) {
      if (matches(headers[AGENT_SECRET_HEADER])) return true;
      if (proxyRoute) return false;
      const auth = headers.authorization;
      return typeof auth === 'string' && /^bearer /i.test(auth) && matches(auth.slice(7).trim());
    },
    refuse(res) {
      res.writeHead(401, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'www-authenticate': 'Bearer realm="wrenn-agent"',
      });
      res.end(body);
    },
    refuseUpgrade(socket) {
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    },
  };
}
