// The sandbox proxy: carries browser and SDK traffic to port P of a capsule. It routes by, in
// order, the headers E2b-Sandbox-Id + E2b-Sandbox-Port, the host name P-<id>.<domain>, and the path
// prefix /proxy/<id>/<P>/; a signed /files URL with none of these goes to the envd of the capsule
// whose token signed it (signed-files.ts). It has its own transport, never the agents' RPC pool.
//
// Once attached to the HTTP server it sees every connection first: a connection whose first request
// is for a capsule is carried by the piped path (pipe.ts: raw bytes, request heads still routed one
// by one); any other goes to the API server untouched. Piped connections move to the native relay
// thread (@wrenn/native relaySockets) once their first request to a capsule port went out (HTTP
// mode, handed back for what it does not take) or their upgrade succeeded (tunnels), unless
// WRENN_PROXY_RELAY=0 or the addon lacks it. Connections the API server already owns
// (and any before attach) still reach capsules through handle()/handleUpgrade() (forward.ts).
import http from 'node:http';
import type http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  createProxyAgent,
  createTlsProxyAgent,
  forwardHttp,
  forwardUpgrade,
  type GuestFailure,
  guestErrorResponse,
  type ProxyTarget,
  proxyFailure,
  sandboxNotFound,
  sendGuestError,
} from '@wrenn/host-agent/client';
import {
  type RelayHttp,
  type RelayResult,
  relayAvailable,
  relayCloseGroup,
  relaySockets,
  relayYieldGroup,
} from '@wrenn/native';
import { ENVD_PORT } from '@wrenn/protocol/contract';
import type { ControlPlaneContext } from '../context.js';
import { requestAuthority } from '../tls/authority.js';
import { createH2StreamRelay } from './h2-streams.js';
import { headEnd, MAX_HEAD_BYTES } from './http-scan.js';
import { HEADERS_TIMEOUT_MS, type PipeDeps, PipedConnection, pipeRouteOf } from './pipe.js';
import { type ProxyRoute, resolveRoute } from './route.js';
import { findSignedCapsule, signedFilesQuery } from './signed-files.js';
import { type ProxyTargetInfo, ProxyTargets } from './targets.js';

export interface SandboxProxy {
  /**
   * Puts the piped path in front of the server's connections (call once, before listen). Without
   * it the first proxied request attaches it, so later connections take the piped path.
   */
  attach(server: http.Server | tls.Server): void;
  /** An HTTP/2 stream for a capsule port on the core API (h2-streams.ts); false: give it to the compat path. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  /** Handles the request when it is for a capsule; false lets the API have it. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  evict(capsuleId: string): void;
  /** Drops the cached routes of a host's capsules (its agent registered again: new address or certificate). */
  evictHost(hostId: string): void;
  /** Caches where a capsule that just started is reached (its first request skips the lookup). */
  prime(capsuleId: string, target: ProxyTargetInfo): void;
  close(): void;
}

/** Distinguishes relay groups of several proxies in one process (tests run many control planes). */
let proxies = 0;

/** WRENN_PROXY_H2_STREAMS: `1` (default) carries h2 streams for capsule ports on the core API, `0` does not. */
export function h2StreamsMode(env: NodeJS.ProcessEnv): 'on' | 'off' {
  const raw = env.WRENN_PROXY_H2_STREAMS;
  if (raw === undefined || raw === '' || raw === '1') return 'on';
  if (raw === '0') return 'off';
  throw new Error(`WRENN_PROXY_H2_STREAMS must be "1" or "0", got "${raw}"`);
}

/** Whether piped connections with a fixed upstream go to the native relay. */
function useRelay(): boolean {
  return process.env.WRENN_PROXY_RELAY !== '0' && relayAvailable();
}

export function createSandboxProxy(ctx: ControlPlaneContext, opts: { headersTimeoutMs?: number } = {}): SandboxProxy {
  const headersTimeoutMs = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const groupPrefix = `proxy${++proxies}/`;
  const agent = createProxyAgent();
  const tlsAgent = createTlsProxyAgent();
  const targets = new ProxyTargets(ctx);
  // Open proxied exchanges per capsule: when the capsule goes, its connections go too (a vanished
  // namespace never sends a FIN, so they would otherwise hang until TCP keepalive gives up).
  const open = new Map<string, Set<{ destroy(): void }>>();
  const track = (
    id: string,
    conn: {
      destroy(): void;
      once(ev: 'close', fn: () => void): unknown;
      removeListener(ev: 'close', fn: () => void): unknown;
    },
  ) => {
    let set = open.get(id);
    if (!set) open.set(id, (set = new Set()));
    set.add(conn);
    const untrack = () => {
      conn.removeListener('close', untrack);
      set.delete(conn);
      if (set.size === 0 && open.get(id) === set) open.delete(id);
    };
    conn.once('close', untrack);
    return untrack;
  };

  // On unless WRENN_PROXY_H2_STREAMS=0 (then every h2 request takes the compat path).
  const h2StreamsOn = h2StreamsMode(process.env) === 'on';
  const h2streams = createH2StreamRelay({
    domain: ctx.config.domain,
    resolve: (route) =>
      targets.peek(route.capsuleId, route.port, route.trafficToken) ??
      targets.lookup(route.capsuleId, route.port, route.trafficToken),
    track: (id, stream) => void track(id, stream),
    attempts: 3,
    backoffMs: 100,
  });

  // Connections the piped path owns (and ones still being read), so close() can end them: the API
  // server does not know them.
  const owned = new Set<{ destroy(): void }>();
  let attached: http.Server | tls.Server | undefined;
  let closed = false;
  function attach(server: http.Server | tls.Server): void {
    if (attached) return;
    attached = server;
    // A TLS listener's HTTP parsers take the decrypted socket ('secureConnection').
    const event = server instanceof tls.Server ? 'secureConnection' : 'connection';
    // The server's own listeners (its HTTP parser) run only for what is not piped.
    const apiListeners = server.listeners(event) as Array<(socket: net.Socket) => void>;
    server.removeAllListeners(event);
    const toApi = (socket: net.Socket, buffered: Buffer) => {
      owned.delete(socket);
      socket.pause();
      if (buffered.length > 0) socket.unshift(buffered);
      for (const l of apiListeners) l.call(server, socket);
      socket.resume();
    };
    const deps: PipeDeps = {
      domain: ctx.config.domain,
      resolve: (route: ProxyRoute) =>
        targets.peek(route.capsuleId, route.port, route.trafficToken) ??
        targets.lookup(route.capsuleId, route.port, route.trafficToken),
      track: (id, conn) => track(id, conn),
      toApi,
      relay: useRelay()
        ? (id: string, client: net.Socket, upstream: net.Socket, idleMs: number, http?: RelayHttp) => {
            const pair = relaySockets(client, upstream, { group: groupPrefix + id, idleMs, http });
            owned.add(pair);
            track(id, pair);
            pair.once('close', (r: RelayResult) => {
              owned.delete(pair);
              // The relay gave the connection back: this path carries on from its next request.
              const back = r.client;
              if (!back) return;
              if (closed) return void back.destroy();
              owned.add(back);
              new PipedConnection(back, r.rest ?? Buffer.alloc(0), deps, () => owned.delete(back));
            });
          }
        : undefined,
      headersTimeoutMs,
      attempts: 3,
      backoffMs: 100,
    };
    // The native relay moves bytes between file descriptors: a Node TLSSocket's are encrypted, so
    // those stay on the JS pipe. The native TLS front (tls/native-front.ts) hands over plaintext
    // sockets instead, which the relay takes like plain HTTP ones.
    const tlsDeps: PipeDeps = { ...deps, relay: undefined };
    server.on(event, (socket: net.Socket) => {
      if (closed) return toApi(socket, Buffer.alloc(0));
      // HTTP/2 sessions go to the server's h2 handler: their requests reach handle() one by one.
      if ((socket as { alpnProtocol?: unknown }).alpnProtocol === 'h2') {
        for (const l of apiListeners) l.call(server, socket);
        return;
      }
      const connDeps = socket instanceof tls.TLSSocket ? tlsDeps : deps;
      owned.add(socket);
      // Read the first request head, then decide who carries the connection.
      let buffered: Buffer = Buffer.alloc(0);
      // Like the API server's headersTimeout: a slow or stuck head is cut off with a 408.
      const timer = setTimeout(() => {
        stop();
        owned.delete(socket);
        if (buffered.length > 0)
          socket.end('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n', () =>
            socket.destroy(),
          );
        else socket.destroy();
      }, headersTimeoutMs);
      const stop = () => {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        socket.removeListener('error', onError);
        socket.removeListener('close', onGone);
      };
      const onError = () => socket.destroy();
      const onGone = () => {
        stop();
        owned.delete(socket);
      };
      const onData = (chunk: Buffer) => {
        buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
        if (headEnd(buffered) < 0 && buffered.length <= MAX_HEAD_BYTES) return;
        stop();
        const route = closed ? undefined : pipeRouteOf(buffered, ctx.config.domain);
        // Anything not clearly for a capsule (API calls, malformed heads) is the API server's.
        if (!route) return toApi(socket, buffered);
        new PipedConnection(socket, buffered, connDeps, () => owned.delete(socket));
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onGone);
    });
  }

  async function target(route: ProxyRoute): Promise<{ target: ProxyTarget; locationPrefix?: string } | GuestFailure> {
    const found = await targets.lookup(route.capsuleId, route.port, route.trafficToken);
    if ('status' in found) return found;
    // Path routing keeps the /proxy/<id>/<P> prefix on redirects; header and host routing do not.
    const locationPrefix = route.kind === 'path' ? route.prefix : undefined;
    return {
      target: {
        host: found.host,
        port: found.port,
        path: found.pathPrefix + route.path,
        ...(found.tls ? { tls: found.tls } : {}),
        ...(found.headers || found.maskHost
          ? { headers: { ...found.headers, ...(found.maskHost ? { host: found.maskHost } : {}) } }
          : {}),
      },
      locationPrefix,
    };
  }

  /** Carries one request to the route's capsule port (or answers the refusal in E2B's shape). */
  function forward(route: ProxyRoute, req: http.IncomingMessage, res: http.ServerResponse): void {
    target(route).then(
      (t) => {
        if ('status' in t) return sendGuestError(res, t);
        track(route.capsuleId, answeredWhenGone(res, route.capsuleId));
        const guest = { sandboxId: route.capsuleId, port: route.port };
        // HTTP/2 carries the host as :authority, which the HTTP/1.1 hop does not forward.
        const authority = req.httpVersionMajor === 2 ? requestAuthority(req) : undefined;
        if (authority && !t.target.headers?.host) t.target.headers = { ...t.target.headers, host: authority };
        forwardHttp(req, res, t.target, {
          agent,
          tlsAgent,
          locationPrefix: t.locationPrefix,
          attempts: 3,
          backoffMs: 100,
          guest,
        });
      },
      (err: unknown) =>
        sendGuestError(
          res,
          proxyFailure(502, `proxy failed: ${err instanceof Error ? err.message : String(err)}`, route.capsuleId),
        ),
    );
  }

  /**
   * A signed /files request with no capsule in its host or headers (signed-files.ts): carried to
   * the envd of the capsule whose token signed it; 401 in E2B's shape when none did.
   */
  function handleSignedFiles(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const query = signedFilesQuery(req.url);
    if (!query) return false;
    attachVia(req.socket);
    findSignedCapsule(ctx, req.method, query).then(
      (capsuleId) => {
        if (!capsuleId) return sendGuestError(res, proxyFailure(401, 'invalid signature: it matches no sandbox'));
        forward({ kind: 'header', capsuleId, port: ENVD_PORT, path: req.url ?? '/' }, req, res);
      },
      (err: unknown) =>
        sendGuestError(res, proxyFailure(502, `proxy failed: ${err instanceof Error ? err.message : String(err)}`)),
    );
    return true;
  }

  const attachVia = (socket: Duplex) => {
    // Until server.ts calls attach(): the accepting server is on the socket (net sets socket.server).
    const server = (socket as { server?: unknown }).server;
    if (!attached && !closed && server && typeof (server as http.Server).listeners === 'function')
      attach(server as http.Server);
  };

  return {
    attach,
    handleStream(stream, headers) {
      if (closed || !h2StreamsOn) return false;
      return h2streams.handle(stream, headers);
    },
    handle(req, res) {
      const route = resolveRoute(req, ctx.config.domain);
      if (!route) return handleSignedFiles(req, res);
      attachVia(req.socket);
      forward(route, req, res);
      return true;
    },
    handleUpgrade(req, socket, head) {
      const route = resolveRoute(req, ctx.config.domain);
      if (!route) return false;
      attachVia(socket);
      target(route).then(
        (t) => {
          if ('status' in t) {
            socket.end(guestErrorResponse(t, http.STATUS_CODES[t.status] ?? 'Error'));
            return;
          }
          track(route.capsuleId, socket);
          forwardUpgrade(req, socket, head, t.target, { guest: { sandboxId: route.capsuleId, port: route.port } });
        },
        () => socket.destroy(),
      );
      return true;
    },
    prime(id, target) {
      targets.prime(id, target);
    },
    evictHost(hostId) {
      // Relayed keep-alive connections come back at their next request and look the route up again.
      for (const id of targets.evictHost(hostId)) relayYieldGroup(groupPrefix + id);
    },
    evict(id) {
      targets.evict(id);
      // Relayed keep-alive connections come back here at their next request, which then sees the
      // capsule's new state (a 409 while paused, or a resume).
      relayYieldGroup(groupPrefix + id);
      const conns = open.get(id);
      if (!conns) return;
      // Only when the capsule is gone for good: a pause also evicts, and its streams may resume.
      void ctx.database.db
        .selectFrom('capsules')
        .select('state')
        .where('id', '=', id)
        .executeTakeFirst()
        .then((row) => {
          if (!row || row.state === 'stopped' || row.state === 'error') {
            // A relayed request still waiting gets E2B's 502 (as the h2 compat path answers): an h2
            // stream the native front carries reaches its client as that answer, not a reset.
            relayCloseGroup(
              groupPrefix + id,
              guestErrorResponse(
                sandboxNotFound(id, `capsule ${id} was destroyed while this request waited for its answer`),
                'Bad Gateway',
              ),
            );
            for (const c of conns) c.destroy();
          }
        })
        .catch(() => undefined);
    },
    close: () => {
      closed = true;
      agent.destroy();
      tlsAgent.destroy();
      h2streams.close();
      for (const s of owned) s.destroy();
      owned.clear();
    },
  };
}

/**
 * A proxied exchange as the capsule-gone teardown sees it: a request still waiting for its answer
 * gets E2B's 502 "The sandbox was not found" (the e2b SDK reads that as "killed" when a call broke
 * off), one already answering is cut.
 */
function answeredWhenGone(res: http.ServerResponse, capsuleId: string) {
  return {
    destroy: () =>
      sendGuestError(
        res,
        sandboxNotFound(capsuleId, `capsule ${capsuleId} was destroyed while this request waited for its answer`),
      ),
    once: (ev: 'close', fn: () => void) => res.once(ev, fn),
    removeListener: (ev: 'close', fn: () => void) => res.removeListener(ev, fn),
  };
}
