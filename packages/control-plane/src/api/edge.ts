// The API's edge against callers that never authenticate or never finish: how long a connection
// may take to send a request head or a body, how long a connection whose last request carried no
// valid key may sit idle, how large a JSON body may be, and the rule that a response sent while
// the request body is still unread closes the connection (so a refused 48 MB upload is never read).
// Authentication itself happens in onRequest hooks (api/auth.ts, e2b/auth.ts), before any body.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

export interface EdgeLimits {
  /**
   * A request head must arrive within this; also how long a connection may stay idle after a
   * response to a request without a valid key (public routes, 401s, 404s).
   */
  headersTimeoutMs: number;
  /** A JSON body must arrive whole within this, and no body may stall (no byte) for this long. */
  bodyTimeoutMs: number;
}

/** Default limit of a parsed (JSON) request body; streamed uploads set their own. */
export const JSON_BODY_LIMIT = 1 << 20;
/** JSON bodies that carry a process's standard input in base64 (exec, process stdin). */
export const STDIN_BODY_LIMIT = 16 << 20;

export const DEFAULT_EDGE_LIMITS: EdgeLimits = { headersTimeoutMs: 10_000, bodyTimeoutMs: 30_000 };

function msFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 100 || n > 3_600_000) {
    throw new Error(`${name} must be a whole number of milliseconds from 100 to 3600000, got '${raw}'`);
  }
  return n;
}

/** WRENN_HEADERS_TIMEOUT_MS and WRENN_BODY_TIMEOUT_MS, over the defaults. */
export function edgeLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): EdgeLimits {
  return {
    headersTimeoutMs: msFromEnv(env, 'WRENN_HEADERS_TIMEOUT_MS', DEFAULT_EDGE_LIMITS.headersTimeoutMs),
    bodyTimeoutMs: msFromEnv(env, 'WRENN_BODY_TIMEOUT_MS', DEFAULT_EDGE_LIMITS.bodyTimeoutMs),
  };
}

/** The request announces a body (a length above 0, or chunked). */
export function announcesBody(raw: IncomingMessage): boolean {
  if (raw.headers['transfer-encoding'] !== undefined) return true;
  const len = raw.headers['content-length'];
  return len !== undefined && len !== '0';
}

/** A body was announced and not all of it has been read. */
export const bodyPending = (raw: IncomingMessage): boolean => announcesBody(raw) && !raw.complete;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The handler reads the raw body stream itself (uploads): only the stall timeout applies. */
    streamedBody?: boolean;
  }
}

/**
 * Watches a body being received: refuses it with a 408 when it stalls for bodyTimeoutMs or, unless
 * streamed, is not whole within bodyTimeoutMs. Progress is read from the socket's byte count, so
 * nothing here takes data from the parser or the handler.
 */
function watchBody(req: FastifyRequest, reply: FastifyReply, limits: EdgeLimits, streamed: boolean): void {
  const socket = req.raw.socket;
  const start = Date.now();
  let seen = socket.bytesRead;
  let lastProgress = start;
  const tick = Math.max(50, Math.min(1000, Math.floor(limits.bodyTimeoutMs / 4)));
  const timer = setInterval(() => {
    const now = Date.now();
    // Bytes still waiting in the request stream mean the server is the slow side (a handler under
    // backpressure), not the client.
    if (socket.bytesRead !== seen || req.raw.readableLength > 0) {
      seen = socket.bytesRead;
      lastProgress = now;
    }
    const stalled = now - lastProgress >= limits.bodyTimeoutMs;
    const late = !streamed && now - start >= limits.bodyTimeoutMs;
    if (!stalled && !late) return;
    stop();
    const why = stalled
      ? `no byte of the request body arrived for ${limits.bodyTimeoutMs} ms`
      : `the request body did not arrive within ${limits.bodyTimeoutMs} ms`;
    if (reply.sent || socket.destroyed) return void socket.destroy();
    // The error handler of the route's API answers (in its own shape); the unread rest of the body
    // makes the onSend hook close the connection.
    reply.send(new ApiError(408, 'request_timeout', why));
  }, tick);
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    req.raw.off('end', stop);
    req.raw.off('close', stop);
    socket.off('close', stop);
  };
  req.raw.once('end', stop);
  req.raw.once('close', stop);
  socket.once('close', stop);
}

const shortIdle = Symbol('wrenn.shortIdle');
type ShortIdleSocket = Socket & { [shortIdle]?: boolean };

/**
 * Root hooks (they apply to every route and to the not-found handler): no body is read for a
 * request that has no route; bodies are watched for stalls; a response sent before its request's
 * body was read closes the connection; a connection whose request carried no valid key may then
 * idle only headersTimeoutMs. `notFound` answers a request without a route in the API's shape.
 */
export function registerEdgeGuards(
  app: FastifyInstance,
  limits: EdgeLimits,
  notFound: (req: FastifyRequest, reply: FastifyReply) => void,
): void {
  app.addHook('onRequest', async (req, reply) => {
    const socket = req.raw.socket as ShortIdleSocket;
    if (socket[shortIdle]) {
      // A new request on a connection that idled under the short timeout: back to node's own.
      socket[shortIdle] = false;
      socket.setTimeout(0);
    }
    // Fastify's not-found route would still parse the body; answer before that.
    if (req.is404) return notFound(req, reply);
  });
  app.addHook('preParsing', async (req, reply, payload) => {
    if (bodyPending(req.raw)) watchBody(req, reply, limits, req.routeOptions.config?.streamedBody === true);
    return payload;
  });
  app.addHook('onSend', async (req, reply, payload) => {
    if (bodyPending(req.raw)) void reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (req) => {
    if (req.team || req.raw.headers.upgrade) return;
    const socket = req.raw.socket as ShortIdleSocket | null;
    // Node has just set the keep-alive timeout of the now idle connection; one whose request had
    // no valid key gets the short one instead.
    if (!socket || socket.destroyed) return;
    socket[shortIdle] = true;
    socket.setTimeout(limits.headersTimeoutMs);
  });
}

/**
 * Whether an upgrade request may reach the API's WebSocket handling: only the native API has
 * WebSocket routes, and it checks the key first. Elsewhere (public pages, the E2B API, unknown
 * paths) the websocket plugin would complete the handshake for anyone and hold the socket.
 */
export const takesUpgrade = (url: string | undefined): boolean => (url ?? '').startsWith('/v1/');

/** Answers an upgrade request that will not be upgraded, in the native error shape, and closes. */
export function refuseUpgrade(socket: Duplex, url: string | undefined): void {
  const body = JSON.stringify({
    error: {
      code: 'not_found',
      message: `no WebSocket route at ${(url ?? '/').split('?')[0]}; WebSocket routes are under /v1/capsules/{id}`,
    },
  });
  socket.end(
    `HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}
