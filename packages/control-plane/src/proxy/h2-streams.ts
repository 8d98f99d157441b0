// HTTP/2 requests for capsule ports, carried on the core http2 API: each stream goes to the
// capsule's server as an HTTP/1.1 request on undici's keep-alive connection pools, and the answer
// is written straight back on the stream. Why: Node's compatibility objects (Http2ServerRequest/
// Response) plus an http.request per stream were most of the proxy's per-request cost over h2
// (bench/proxy-tls: 0.17 of direct). What this does not take (path routing, whose redirects are
// rewritten; a request with disagreeing :authority and host; signed /files URLs; anything not for a
// capsule) goes to the compatibility path as before (sandbox-proxy.ts handle()). A hop to an agent
// that serves TLS goes through a pool of its own, pinned to that agent's certificate.
import http2 from 'node:http2';
import { PassThrough } from 'node:stream';
import {
  agentTlsFailure,
  type GuestFailure,
  guestErrorBody,
  HOP_BY_HOP,
  type PinnedTlsOptions,
  portNotOpen,
  proxyFailure,
  RESPONSE_HOP_BY_HOP,
  sandboxNotFound,
} from '@wrenn/host-agent/client';
import { Agent, type Dispatcher } from 'undici';
import { type ProxyRoute, routeOf } from './route.js';
import type { Failure, ResolvedTarget } from './targets.js';

export interface H2StreamDeps {
  domain: string;
  resolve(route: ProxyRoute): ResolvedTarget | Failure | Promise<ResolvedTarget | Failure>;
  /** Ties the exchange to its capsule (its destroy() is called when the capsule goes). */
  track(capsuleId: string, exchange: TrackedExchange): void;
  /** Dial attempts while a server is still starting (linear backoff). */
  attempts: number;
  backoffMs: number;
}

/** What the capsule-gone teardown holds of one exchange. */
export interface TrackedExchange {
  destroy(): void;
  once(ev: 'close', fn: () => void): unknown;
  removeListener(ev: 'close', fn: () => void): unknown;
}

export interface H2StreamRelay {
  /** Carries the stream when it is for a capsule port (true); false leaves it to the compat path. */
  handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  close(): void;
}

// Not passed to the capsule's server: hop-by-hop fields and the proxy's own (as forwardHttp), and
// host (set from :authority); pseudo-headers are skipped by their colon.
const DROPPED = new Set([...HOP_BY_HOP, 'host']);
const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH']);

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

function respondFailure(stream: http2.ServerHttp2Stream, f: GuestFailure): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  const body = guestErrorBody(f);
  stream.respond({
    ':status': f.status,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  stream.end(body);
}

// The client's address per session: session.socket is a Proxy, slow to read on every stream.
const remotes = new WeakMap<object, string | undefined>();
function remoteOf(session: http2.Http2Session | undefined): string | undefined {
  if (!session) return undefined;
  if (!remotes.has(session)) remotes.set(session, session.socket?.remoteAddress);
  return remotes.get(session);
}

export function createH2StreamRelay(deps: H2StreamDeps): H2StreamRelay {
  // Idle keep-alive connections close after 4 s (undici's default), so a gone capsule keeps none.
  const pools = new Agent({ connections: 256, pipelining: 1 });
  // One pool per pinned agent certificate (pinnedTls() memoizes its options per certificate).
  const tlsPools = new Map<PinnedTlsOptions, Agent>();
  const poolFor = (t: ResolvedTarget): Agent => {
    if (!t.tls) return pools;
    let p = tlsPools.get(t.tls);
    if (!p) {
      p = new Agent({ connections: 256, pipelining: 1, connect: { ...t.tls } });
      tlsPools.set(t.tls, p);
    }
    return p;
  };

  function forward(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    route: ProxyRoute,
    authority: string | undefined,
    t: ResolvedTarget,
  ): void {
    if (stream.destroyed || stream.closed) return;
    let abortUpstream: (() => void) | undefined;
    let gone = false;
    // When the capsule goes, a stream still waiting for its answer gets E2B's 502 "The sandbox was
    // not found" (the e2b SDK's check after a broken call reads it as "killed"); one answering is cut.
    deps.track(route.capsuleId, {
      destroy: () => {
        gone = true;
        abortUpstream?.();
        respondFailure(
          stream,
          sandboxNotFound(
            route.capsuleId,
            `capsule ${route.capsuleId} was destroyed while this request waited for its answer`,
          ),
        );
      },
      once: (ev, fn) => stream.once(ev, fn),
      removeListener: (ev, fn) => stream.removeListener(ev, fn),
    });
    const method = one(headers[':method']) ?? 'GET';
    const out: Record<string, string | string[]> = {};
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined || k.charCodeAt(0) === 58 /* ':' */ || DROPPED.has(k)) continue;
      out[k] = v as string | string[];
    }
    const remote = remoteOf(stream.session);
    if (remote) out['x-forwarded-for'] = out['x-forwarded-for'] ? `${one(out['x-forwarded-for'])}, ${remote}` : remote;
    if (authority) out['x-forwarded-host'] = authority;
    Object.assign(out, t.headers);
    // Written `Host`, as forwardHttp writes it (a server that matches its case sees it).
    out.Host = t.maskHost ?? authority ?? `${t.host}:${t.port}`;
    // A body unless the client ended the stream with its headers.
    const hasBody = !stream.readableEnded && !stream.endAfterHeaders;
    const attempt = (n: number) => {
      if (gone) return;
      let started = false;
      let answered = false;
      poolFor(t).dispatch(
        {
          origin: `${t.tls ? 'https' : 'http'}://${t.host}:${t.port}`,
          path: t.pathPrefix + route.path,
          method: method as Dispatcher.HttpMethod,
          headers: out,
          // Not the stream itself: undici destroys a body stream once sent, which would reset the h2 stream.
          body: hasBody ? stream.pipe(new PassThrough()) : null,
        },
        {
          onRequestStart(controller) {
            abortUpstream = () => controller.abort(new Error('the capsule went'));
            // A stream closed before its answer was whole (the client reset it, its session or
            // connection went): the capsule's server sees its request end. Not writableFinished:
            // Node ends a stream's writable side when it closes, answered or not.
            stream.once('close', () => {
              if (!answered) controller.abort(new Error('the client closed the stream'));
            });
          },
          onResponseStart(controller, statusCode, resHeaders) {
            started = true;
            if (stream.destroyed || stream.closed || stream.headersSent)
              return controller.abort(new Error('the stream was closed or answered meanwhile'));
            const h: http2.OutgoingHttpHeaders = { ':status': statusCode };
            for (const [k, v] of Object.entries(resHeaders)) if (!RESPONSE_HOP_BY_HOP.has(k)) h[k] = v;
            stream.respond(h, { endStream: method === 'HEAD' || statusCode === 204 || statusCode === 304 });
            stream.on('drain', () => controller.resume());
          },
          onResponseData(controller, chunk) {
            if (stream.destroyed || stream.closed) return;
            if (!stream.write(chunk)) controller.pause();
          },
          onResponseEnd() {
            answered = true;
            if (!stream.destroyed && !stream.writableEnded) stream.end();
          },
          onResponseError(_controller, err) {
            answered = true;
            if (gone) return; // answered when the capsule went
            const code = (err as NodeJS.ErrnoException).code ?? '';
            if (!started && !hasBody && n + 1 < deps.attempts && RETRYABLE.has(code)) {
              setTimeout(() => attempt(n + 1), deps.backoffMs * (n + 1));
              return;
            }
            if (started) return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
            const pinned = t.tls ? agentTlsFailure(err, `https://${t.host}:${t.port}`) : undefined;
            if (pinned) return respondFailure(stream, proxyFailure(502, pinned, route.capsuleId));
            respondFailure(
              stream,
              portNotOpen(
                route.capsuleId,
                route.port,
                `nothing answered on port ${route.port} in the capsule (${code || err.message}); is the server running and listening?`,
              ),
            );
          },
        },
      );
    };
    attempt(0);
  }

  return {
    handle(stream, headers) {
      const method = one(headers[':method']);
      if (!method || method === 'CONNECT') return false;
      const authority = one(headers[':authority']);
      const host = one(headers.host);
      // Disagreeing names: the compat path refuses them (tls/authority.ts).
      if (authority && host && authority.toLowerCase() !== host.toLowerCase()) return false;
      const name = authority ?? host;
      const url = one(headers[':path']) ?? '/';
      const route = routeOf(url, (n) => (n === 'host' ? name : one(headers[n])), deps.domain);
      // Path routing rewrites redirects under its prefix: the compat path does that.
      if (!route || route.kind === 'path') return false;
      if (!Number.isInteger(route.port) || route.port < 1 || route.port > 65535) return false;
      const found = deps.resolve(route);
      const go = (t: ResolvedTarget | Failure) =>
        'status' in t ? respondFailure(stream, t) : forward(stream, headers, route, name, t);
      if (found instanceof Promise)
        found.then(go, (err: unknown) =>
          respondFailure(
            stream,
            proxyFailure(502, `proxy failed: ${err instanceof Error ? err.message : String(err)}`, route.capsuleId),
          ),
        );
      else go(found);
      return true;
    },
    close() {
      void pools.destroy().catch(() => undefined);
      for (const p of tlsPools.values()) void p.destroy().catch(() => undefined);
      tlsPools.clear();
    },
  };
}
