// HTTP/1.1 reverse-proxy primitives shared by the host agent's port proxy and the control plane's
// sandbox proxy. Proxy traffic always uses its own keep-alive agent, never the RPC transport, so a
// busy web app in a capsule cannot starve terminal and exec streams. A hop to a host agent that
// serves TLS carries that agent's pinned certificate (target.tls, auth/pinned-tls.ts).
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { agentTlsFailure, type PinnedTlsOptions } from '../auth/pinned-tls.js';
import { type GuestFailure, guestErrorBody, guestErrorResponse, portNotOpen, proxyFailure } from './guest-errors.js';

export interface ProxyTarget {
  host: string;
  port: number;
  /** Path and query to request on the target (trailing slashes kept as given). */
  path: string;
  /** Extra headers to set on the upstream request. */
  headers?: Record<string, string>;
  /** The hop is TLS to a host agent, which must present this pinned certificate. */
  tls?: PinnedTlsOptions;
}

export interface ForwardOptions {
  agent: http.Agent;
  /** Keep-alive pool for targets with `tls` (createTlsProxyAgent). */
  tlsAgent?: https.Agent;
  /** Prefix the client used (e.g. /proxy/cl-x/8080); redirects from upstream are rewritten under it. */
  locationPrefix?: string;
  /** Dial attempts while a server is still starting (linear backoff). */
  attempts?: number;
  backoffMs?: number;
  /** The capsule and its port the request is for, named in the 502 when nothing answers. */
  guest?: Guest;
}

export interface Guest {
  sandboxId: string;
  port: number;
}

function closedPort(target: ProxyTarget, guest: Guest | undefined, err: NodeJS.ErrnoException): GuestFailure {
  // The hop to the agent failed its certificate check: say that, not "nothing answered".
  const pinned = target.tls ? agentTlsFailure(err, `https://${target.host}:${target.port}`) : undefined;
  if (pinned) return proxyFailure(502, pinned, guest?.sandboxId);
  const port = guest?.port ?? target.port;
  return portNotOpen(
    guest?.sandboxId,
    port,
    `nothing answered on port ${port} in the capsule (${err.code ?? err.message}); is the server running and listening?`,
  );
}

// x-wrenn-agent-secret is the host agent's credential (auth/request-auth.ts): never passed on
// from a client; the control plane sets it itself (target.headers) on its hop to an agent.
export const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'x-wrenn-agent-secret',
  // The sandbox proxy's check of a private capsule (control plane), not for the capsule's server.
  'e2b-traffic-access-token',
];

// Connection-specific fields of a response, which HTTP/2 forbids and HTTP/1.1 sets per hop.
export const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'proxy-connection',
  'upgrade',
]);

export function createProxyAgent(): http.Agent {
  return new http.Agent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 64,
    keepAliveMsecs: 30_000,
    timeout: 620_000,
  });
}

/** The same pool for TLS hops (to agents that serve TLS); sockets are pooled per pinned certificate. */
export function createTlsProxyAgent(): https.Agent {
  return new https.Agent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 64,
    keepAliveMsecs: 30_000,
    timeout: 620_000,
  });
}

/** http.request, or https.request with the target's pinned certificate. */
function upstreamRequest(target: ProxyTarget, options: http.RequestOptions, tlsAgent?: https.Agent | false) {
  if (!target.tls) return http.request(options);
  return https.request({ ...options, ...target.tls, agent: options.agent === false ? false : (tlsAgent ?? false) });
}

function upstreamHeaders(req: http.IncomingMessage, target: ProxyTarget): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.includes(k) || k.startsWith(':')) continue;
    headers[k] = v;
  }
  const fwdFor = req.socket.remoteAddress;
  if (fwdFor)
    headers['x-forwarded-for'] = req.headers['x-forwarded-for']
      ? `${req.headers['x-forwarded-for']}, ${fwdFor}`
      : fwdFor;
  if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
  Object.assign(headers, target.headers);
  // Written `Host` (the client's, a masked one, or an HTTP/2 request's :authority), as HTTP/1.1
  // clients and E2B's proxy write it: a server that matches its case sees it.
  const host = headers.host;
  delete headers.host;
  if (host !== undefined) headers.Host = host;
  return headers;
}

/** Rewrites an upstream Location so the browser stays under the proxy prefix. */
export function rewriteLocation(location: string, target: ProxyTarget, prefix: string | undefined): string {
  if (!prefix) return location;
  if (location.startsWith('/') && !location.startsWith('//')) return `${prefix}${location}`;
  try {
    const u = new URL(location);
    const local = ['localhost', '127.0.0.1', '0.0.0.0', target.host];
    if (
      (u.protocol === 'http:' || u.protocol === 'https:') &&
      local.includes(u.hostname) &&
      (u.port === '' || Number(u.port) === target.port)
    ) {
      return `${prefix}${u.pathname}${u.search}${u.hash}`;
    }
  } catch {
    // relative like "foo/bar": already stays under the prefix
  }
  return location;
}

function isRetryableDialError(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'EHOSTUNREACH';
}

/** Forwards one HTTP request; retries the dial (not a half-sent request) while the server starts. */
export function forwardHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: ProxyTarget,
  opts: ForwardOptions,
): void {
  const attempts = opts.attempts ?? 3;
  const backoff = opts.backoffMs ?? 100;
  const hasBody =
    !(req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') ||
    req.headers['content-length'] !== undefined ||
    req.headers['transfer-encoding'] !== undefined;
  const attempt = (n: number) => {
    // Answered meanwhile (the proxy answers for a capsule that went while a dial was retried).
    if (res.headersSent || res.destroyed) return;
    const up = upstreamRequest(
      target,
      {
        host: target.host,
        port: target.port,
        method: req.method,
        path: target.path,
        headers: upstreamHeaders(req, target),
        agent: opts.agent,
      },
      opts.tlsAgent,
    );
    let dialed = false;
    up.once('socket', (s) => {
      if (!s.connecting) dialed = true;
      else s.once(target.tls ? 'secureConnect' : 'connect', () => (dialed = true));
    });
    let answered = false;
    up.on('response', (ur) => {
      // The proxy answered it already (its capsule went): this late answer has nowhere to go.
      if (res.headersSent || res.destroyed) return void up.destroy();
      ur.once('end', () => (answered = true));
      const headers: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(ur.headers)) {
        if (v === undefined || RESPONSE_HOP_BY_HOP.has(k)) continue;
        headers[k] = v;
      }
      if (typeof ur.headers.location === 'string')
        headers.location = rewriteLocation(ur.headers.location, target, opts.locationPrefix);
      // HTTP/2 clients (the control plane's TLS listener) get no reason phrase: h2 has none.
      if (req.httpVersionMajor === 2) res.writeHead(ur.statusCode ?? 502, headers);
      else res.writeHead(ur.statusCode ?? 502, ur.statusMessage, headers);
      ur.pipe(res);
      ur.on('error', () => res.destroy());
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      // Retry only when nothing reached the server and the body was not consumed yet.
      if (!dialed && !hasBody && n + 1 < attempts && isRetryableDialError(err)) {
        setTimeout(() => attempt(n + 1), backoff * (n + 1));
        return;
      }
      if (res.headersSent) {
        res.destroy(err);
        return;
      }
      const body = guestErrorBody(closedPort(target, opts.guest, err));
      res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    res.on('close', () => {
      if (!res.writableFinished || !answered) up.destroy();
    });
    if (hasBody) req.pipe(up);
    else up.end();
  };
  attempt(0);
}

/** Forwards a WebSocket (or any HTTP/1.1 Upgrade) by splicing the two sockets after the handshake. */
export function forwardUpgrade(
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: ProxyTarget,
  opts: { attempts?: number; backoffMs?: number; guest?: Guest } = {},
): void {
  const guest = opts.guest;
  const attempts = opts.attempts ?? 3;
  const backoff = opts.backoffMs ?? 100;
  const attempt = (n: number) => {
    const headers = upstreamHeaders(req, target);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade ?? 'websocket';
    const up = upstreamRequest(target, {
      host: target.host,
      port: target.port,
      method: req.method,
      path: target.path,
      headers,
      agent: false,
    });
    up.on('upgrade', (ur, upSocket, upHead) => {
      let raw = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\n`;
      for (let i = 0; i < ur.rawHeaders.length; i += 2) raw += `${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}\r\n`;
      socket.write(`${raw}\r\n`);
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      upSocket.pipe(socket).pipe(upSocket);
      const close = () => {
        upSocket.destroy();
        socket.destroy();
      };
      upSocket.on('error', close);
      socket.on('error', close);
      upSocket.on('close', close);
      socket.on('close', close);
    });
    up.on('response', (ur) => {
      // The server refused the upgrade: pass its answer through and close.
      let raw = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\nconnection: close\r\n`;
      for (let i = 0; i < ur.rawHeaders.length; i += 2) {
        const k = ur.rawHeaders[i]?.toLowerCase();
        if (k !== 'connection' && k !== 'transfer-encoding') raw += `${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}\r\n`;
      }
      socket.write(`${raw}\r\n`);
      ur.pipe(socket);
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (n + 1 < attempts && isRetryableDialError(err)) {
        setTimeout(() => attempt(n + 1), backoff * (n + 1));
        return;
      }
      socket.end(guestErrorResponse(closedPort(target, guest, err), 'Bad Gateway'));
    });
    up.end();
  };
  attempt(0);
}
