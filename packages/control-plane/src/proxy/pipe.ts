// The piped proxy path: one client connection carried over one upstream TCP connection to a capsule
// port, bytes forwarded as they arrive. Node's HTTP machinery (request/response objects, re-encoded
// headers and bodies) is what limited proxied throughput, so here only message heads are looked at:
// every request head is routed again (a keep-alive connection may ask for another capsule, port or
// the API next), rewritten (path prefix, X-Forwarded-*), and its body length followed so the next
// head is found; response heads are read to know when each response ends and to rewrite redirects
// for path routing. A request for another capsule or port waits until every earlier response went
// back (HTTP/1.1 answers in order), then gets its own upstream connection; a request for the API
// hands the connection to the API server. WebSocket upgrades become a plain two-way tunnel after 101.
//
// The native relay (deps.relay, when the addon has it) carries what needs no JS: every tunnel after
// its 101 as plain bytes, and, once its first request was routed and dialed, a keep-alive
// connection to a capsule port reached directly (no agent path prefix) in its HTTP mode: the relay
// thread then routes, rewrites and frames each later request and response itself (@wrenn/native
// relay.ts) as this file does, and hands the connection back here (deps.relay's handback) for any
// request it does not take (another route, an upgrade, unusual framing), when the upstream closes
// between requests, and when the capsule is paused (relayYieldGroup), so the next request gets
// this path's answer (409, or a resume). An upstream that is TLS (a remote host agent's port,
// pinned to its registered certificate) stays on this path: the relay moves bytes between file
// descriptors, and those of a TLS socket are encrypted.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import {
  agentTlsFailure,
  type GuestFailure,
  guestErrorResponse,
  portNotOpen,
  proxyFailure,
  rewriteLocation,
  sandboxNotFound,
} from '@wrenn/host-agent/client';
import type { RelayHttp } from '@wrenn/native';
import { TRAFFIC_ACCESS_TOKEN_HEADER } from '@wrenn/protocol/contract';
import {
  ChunkedScanner,
  field,
  type Head,
  hasToken,
  headEnd,
  MAX_HEAD_BYTES,
  parseHead,
  requestBody,
  responseBody,
} from './http-scan.js';
import { type ProxyRoute, routeOf } from './route.js';
import type { Failure, ResolvedTarget } from './targets.js';

/** Default time a request head may take (the server passes WRENN_HEADERS_TIMEOUT_MS in PipeDeps). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const IDLE_TIMEOUT_MS = 620_000;

export interface PipeDeps {
  domain: string;
  /** Synchronous when the capsule's target is cached, so the common case costs no promise. */
  resolve(route: ProxyRoute): ResolvedTarget | Failure | Promise<ResolvedTarget | Failure>;
  /** Registers the connection under a capsule (destroyed with it); returns the undo. */
  track(
    capsuleId: string,
    conn: {
      destroy(): void;
      once(ev: 'close', fn: () => void): unknown;
      removeListener(ev: 'close', fn: () => void): unknown;
    },
  ): () => void;
  /** Gives the connection to the API server, with the bytes already read from it. */
  toApi(socket: net.Socket, buffered: Buffer): void;
  /**
   * Hands the client and its upstream to the native relay (which closes them when done, or hands
   * the client back to a new PipedConnection); absent when the relay is unavailable. idleMs 0: no
   * idle timeout. http: the relay's HTTP mode (else the bytes pass unread).
   */
  relay?(capsuleId: string, client: net.Socket, upstream: net.Socket, idleMs: number, http?: RelayHttp): void;
  /** Time a request head may take (default HEADERS_TIMEOUT_MS). */
  headersTimeoutMs?: number;
  /** Dial attempts while a server is still starting (linear backoff). */
  attempts: number;
  backoffMs: number;
}

interface InFlight {
  method: string;
  upgrade: boolean;
  /** Path routing: redirects are rewritten to stay under this prefix. */
  locationPrefix?: string;
  host: string;
  port: number;
}

const EMPTY: Buffer = Buffer.alloc(0);
const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH']);
// x-wrenn-agent-secret: a client's copy never passes; the hop to an agent carries ours (t.headers).
// e2b-traffic-access-token is the proxy's credential, checked here, not the capsule's business.
const DROPPED_REQUEST_FIELDS = new Set([
  TRAFFIC_ACCESS_TOKEN_HEADER,
  'proxy-authorization',
  'proxy-connection',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-wrenn-agent-secret',
]);

type ReqState = 'head' | 'length' | 'chunked' | 'await-upgrade' | 'tunnel';
type ResState = 'head' | 'length' | 'chunked' | 'close' | 'tunnel';

/** Routes the connection's first request head: a pipe when it is for a capsule, else undefined. */
export function pipeRouteOf(buffered: Buffer, domain: string): ProxyRoute | undefined {
  const end = headEnd(buffered);
  if (end < 0) return undefined;
  const head = parseHead(buffered, end, 'request');
  if (typeof head === 'string') return undefined;
  return routeOf(head.start[1], (n) => field(head, n), domain);
}

export class PipedConnection {
  private pending: Buffer;
  private req: ReqState = 'head';
  private reqLeft = 0;
  private reqChunks = new ChunkedScanner();
  /** Set while a head waits for a lookup, a dial or earlier responses. */
  private blocked = false;
  private res: ResState = 'head';
  private resLeft = 0;
  private resChunks = new ChunkedScanner();
  private upPending = EMPTY;
  private clientOut: Buffer | undefined;
  private upstream: net.Socket | undefined;
  private upKey = '';
  /** The upstream is a TLS socket (never handed to the relay). */
  private upTls = false;
  private upCapsule = '';
  private untrack: (() => void) | undefined;
  private readonly inFlight: InFlight[] = [];
  private onIdle: (() => void) | undefined;
  private endAfterResponse = false;
  private clientEnded = false;
  private closed = false;
  private headerTimer: NodeJS.Timeout | undefined;
  private clientBackpressure = false;
  private upBackpressure = false;
  private readonly remote: string;

  constructor(
    private readonly client: net.Socket,
    buffered: Buffer,
    private readonly deps: PipeDeps,
    private readonly onClose: () => void,
  ) {
    this.pending = buffered;
    this.remote = client.remoteAddress ?? '';
    client.setNoDelay(true);
    client.setTimeout(IDLE_TIMEOUT_MS, () => this.destroy());
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('error', () => this.destroy());
    client.on('close', () => this.destroy());
    client.on('drain', this.onClientDrain);
    this.pump();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.headerTimer);
    this.untrack?.();
    this.upstream?.destroy();
    this.client.destroy();
    this.onClose();
  }

  /** Ends the client's side after everything queued for it, and lets go of the upstream. */
  private finish(): void {
    if (this.closed) return;
    this.flushClient();
    this.closed = true;
    clearTimeout(this.headerTimer);
    // Like Node's destroySoon: close once our last bytes are out, not when the peer gets round to it.
    this.client.end(() => this.client.destroy());
    this.untrack?.();
    this.upstream?.destroy();
    this.onClose();
  }

  // ---- client -> upstream ----

  private readonly onClientData = (chunk: Buffer): void => {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pump();
  };

  private readonly onClientEnd = (): void => {
    this.clientEnded = true;
    if (this.req === 'tunnel') this.upstream?.end();
    // No more requests can come; an answer still pending is abandoned, as Node's HTTP server treats
    // a client's EOF (and the relay's HTTP mode): the capsule's server sees its request end instead
    // of the connection waiting on a gone client.
    else this.destroy();
  };

  private pump(): void {
    while (!this.closed && !this.blocked && this.pending.length > 0) {
      switch (this.req) {
        case 'head':
          if (!this.takeHead()) return;
          break;
        case 'length': {
          const n = Math.min(this.reqLeft, this.pending.length);
          this.toUpstream(this.pending.subarray(0, n));
          this.pending = this.pending.subarray(n);
          this.reqLeft -= n;
          if (this.reqLeft === 0) this.req = 'head';
          break;
        }
        case 'chunked': {
          const n = this.reqChunks.scan(this.pending);
          if (n < 0) return this.refuse(proxyFailure(400, 'malformed chunked request body'));
          this.toUpstream(this.pending.subarray(0, n));
          this.pending = this.pending.subarray(n);
          if (this.reqChunks.done) this.req = 'head';
          break;
        }
        case 'tunnel':
          this.toUpstream(this.pending);
          this.pending = EMPTY;
          break;
        case 'await-upgrade':
          return;
      }
    }
  }

  /** Handles the head at the start of pending; false when the loop must stop for now. */
  private takeHead(): boolean {
    const end = headEnd(this.pending);
    if (end < 0) {
      if (this.pending.length > MAX_HEAD_BYTES)
        this.refuse(proxyFailure(431, `request head over ${MAX_HEAD_BYTES} bytes`));
      else {
        const ms = this.deps.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
        this.headerTimer ??= setTimeout(
          () => this.refuse(proxyFailure(408, `request head not received within ${ms} ms`)),
          ms,
        );
      }
      return false;
    }
    clearTimeout(this.headerTimer);
    this.headerTimer = undefined;
    const head = parseHead(this.pending, end, 'request');
    if (typeof head === 'string') return (this.refuse(proxyFailure(400, head)), false);
    const route = routeOf(head.start[1], (n) => field(head, n), this.deps.domain);
    if (!route) {
      // For the API: once nothing is in flight, the API server takes the connection over.
      this.block();
      this.whenIdle(() => this.handToApi());
      return false;
    }
    const body = requestBody(head);
    if (typeof body === 'string') return (this.refuse(proxyFailure(400, body)), false);
    const found = this.deps.resolve(route);
    if (found instanceof Promise) {
      this.block();
      found.then(
        (t) => this.closed || this.routeTo(head, end, route, body, t, true),
        (err: unknown) =>
          this.closed ||
          this.refuse(
            proxyFailure(502, `proxy failed: ${err instanceof Error ? err.message : String(err)}`, route.capsuleId),
          ),
      );
      return false;
    }
    return this.routeTo(head, end, route, body, found, false);
  }

  private routeTo(
    head: Head,
    end: number,
    route: ProxyRoute,
    body: Exclude<ReturnType<typeof requestBody>, string>,
    t: ResolvedTarget | Failure,
    resumed: boolean,
  ): boolean {
    if ('status' in t) {
      this.block();
      this.whenIdle(() => this.refuse(t));
      return false;
    }
    const key = `${route.capsuleId} ${t.host} ${t.port}`;
    const go = () => {
      this.send(head, end, route, body, t);
      if (this.pinnable(route, t)) return this.pin(IDLE_TIMEOUT_MS, this.relayHttp(head, route, t));
      this.unblock();
    };
    if (this.upstream && this.upKey === key) {
      this.send(head, end, route, body, t);
      if (resumed) this.unblock();
      return true;
    }
    // Another capsule or port: a new upstream, once every earlier response has gone back.
    this.block();
    this.whenIdle(() => this.dial(t, key, route.capsuleId, route.port, 0, go));
    return false;
  }

  private send(
    head: Head,
    end: number,
    route: ProxyRoute,
    body: Exclude<ReturnType<typeof requestBody>, string>,
    t: ResolvedTarget,
  ): void {
    const method = head.start[0];
    // The header lines pass as received, minus the proxy's own fields; X-Forwarded-* are appended.
    let fields = head.text.slice(head.fieldsAt);
    let xff = '';
    for (let i = head.names.length - 1; i >= 0; i--) {
      const name = head.names[i] ?? '';
      // maskRequestHost: the client's host is replaced (it still goes as x-forwarded-host).
      if (!DROPPED_REQUEST_FIELDS.has(name) && !(name === 'host' && t.maskHost)) continue;
      if (name === 'x-forwarded-for') xff = xff ? `${head.values[i]}, ${xff}` : (head.values[i] ?? '');
      const from = (head.from[i] ?? 0) - 2 - head.fieldsAt;
      fields = fields.slice(0, from) + fields.slice((head.to[i] ?? 0) - head.fieldsAt);
    }
    let out = `${method} ${t.pathPrefix}${route.path} ${head.start[2]}${fields}`;
    if (this.remote) out += `\r\nx-forwarded-for: ${xff ? `${xff}, ${this.remote}` : this.remote}`;
    const host = field(head, 'host');
    if (host) out += `\r\nx-forwarded-host: ${host}`;
    // Written `Host`, as HTTP/1.1 clients and E2B's proxy write it (servers that match its case see it).
    if (t.maskHost) out += `\r\nHost: ${t.maskHost}`;
    for (const [k, v] of Object.entries(t.headers ?? {})) out += `\r\n${k}: ${v}`;
    this.toUpstream(Buffer.from(`${out}\r\n\r\n`, 'latin1'));
    this.pending = this.pending.subarray(end);
    const upgrade = field(head, 'upgrade') !== undefined && hasToken(head, 'connection', 'upgrade');
    this.inFlight.push({
      method,
      upgrade,
      locationPrefix: route.kind === 'path' ? route.prefix : undefined,
      host: t.host,
      port: t.port,
    });
    if (upgrade) {
      // Nothing more is read from the client until the server accepted or refused the upgrade.
      this.req = 'await-upgrade';
    } else if (body.kind === 'length') {
      this.req = 'length';
      this.reqLeft = body.n;
    } else if (body.kind === 'chunked') {
      this.req = 'chunked';
      this.reqChunks = new ChunkedScanner();
    }
  }

  /** Whether the relay can carry the rest of the connection in its HTTP mode (see the top). */
  private pinnable(_route: ProxyRoute, t: ResolvedTarget): boolean {
    // A private capsule's requests each need their token checked, a masked one's host replaced:
    // the relay thread does neither, so they stay on this path.
    return (
      this.deps.relay !== undefined &&
      !t.tls &&
      t.pathPrefix === '' &&
      this.req !== 'await-upgrade' &&
      !t.guarded &&
      !t.maskHost
    );
  }

  /** The relay's HTTP mode for a connection whose last request was this head, just sent. */
  private relayHttp(head: Head, route: ProxyRoute, t: ResolvedTarget): RelayHttp {
    return {
      kind: route.kind,
      prefix: route.prefix,
      host: field(head, 'host'),
      sandboxId: field(head, 'e2b-sandbox-id'),
      sandboxPort: field(head, 'e2b-sandbox-port'),
      remote: this.remote,
      targetHost: t.host,
      targetPort: t.port,
      inflight: this.inFlight.map((f) => f.method === 'HEAD'),
      req: this.req === 'length' || this.req === 'chunked' ? this.req : 'head',
      reqLeft: this.reqLeft,
      clientBytes: this.pending,
      upstreamBytes: this.upPending,
    };
  }

  /** Gives the connection and its upstream to the relay, after the bytes JS still holds. */
  private pin(idleMs: number, http?: RelayHttp): void {
    const up = this.upstream;
    if (!up || this.closed || !this.deps.relay || this.upTls) return;
    this.flushClient();
    // Without HTTP mode, unframed from here on: what the client sent after the routed head follows it as is.
    if (!http && this.pending.length > 0) up.write(this.pending);
    if (!http && this.upPending.length > 0) this.client.write(this.upPending);
    this.pending = EMPTY;
    this.upPending = EMPTY;
    this.closed = true;
    clearTimeout(this.headerTimer);
    this.untrack?.();
    this.untrack = undefined;
    this.onClose();
    this.deps.relay(this.upCapsule, this.client, up, idleMs, http);
  }

  private block(): void {
    this.blocked = true;
    this.flowClient();
  }

  private unblock(): void {
    this.blocked = false;
    this.flowClient();
    this.pump();
  }

  private flowClient(): void {
    if (this.closed) return;
    if (this.blocked || this.upBackpressure || this.req === 'await-upgrade') this.client.pause();
    else this.client.resume();
  }

  private toUpstream(buf: Buffer): void {
    const up = this.upstream;
    if (!up || buf.length === 0) return;
    if (!up.write(buf) && !this.upBackpressure) {
      this.upBackpressure = true;
      this.flowClient();
      up.once('drain', () => {
        this.upBackpressure = false;
        this.flowClient();
      });
    }
  }

  private idle(): boolean {
    return this.inFlight.length === 0 && this.res === 'head' && this.upPending.length === 0;
  }

  private whenIdle(fn: () => void): void {
    if (this.idle()) fn();
    else this.onIdle = fn;
  }

  private handToApi(): void {
    if (this.closed) return;
    this.flushClient();
    this.closed = true;
    clearTimeout(this.headerTimer);
    this.untrack?.();
    this.upstream?.destroy();
    const c = this.client;
    c.removeListener('data', this.onClientData);
    c.removeListener('end', this.onClientEnd);
    c.removeListener('drain', this.onClientDrain);
    c.removeAllListeners('error');
    c.removeAllListeners('close');
    c.setTimeout(0);
    this.onClose();
    this.deps.toApi(c, this.pending);
  }

  /** Answers with an error and closes (the connection's framing cannot be trusted after it). */
  private refuse(f: GuestFailure): void {
    if (this.closed) return;
    if (!this.idle()) return this.destroy();
    this.flushClient();
    this.client.end(guestErrorResponse(f, http.STATUS_CODES[f.status] ?? 'Error'), () => this.client.destroy());
    this.closed = true;
    clearTimeout(this.headerTimer);
    this.untrack?.();
    this.upstream?.destroy();
    this.onClose();
  }

  // ---- upstream ----

  private dial(t: ResolvedTarget, key: string, capsuleId: string, port: number, n: number, then: () => void): void {
    if (this.closed) return;
    this.upstream?.destroy();
    this.upstream = undefined;
    const up: net.Socket = t.tls
      ? tls.connect({ host: t.host, port: t.port, ...t.tls, ALPNProtocols: ['http/1.1'] })
      : net.connect({ host: t.host, port: t.port });
    let connected = false;
    up.once(t.tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      if (this.closed) return void up.destroy();
      up.setNoDelay(true);
      this.upstream = up;
      this.upTls = t.tls !== undefined;
      this.upKey = key;
      this.upCapsule = capsuleId;
      this.upPending = EMPTY;
      this.res = 'head';
      this.untrack?.();
      const client = this.client;
      this.untrack = this.deps.track(capsuleId, {
        destroy: () => this.capsuleGone(capsuleId),
        once: (ev, fn) => client.once(ev, fn),
        removeListener: (ev, fn) => client.removeListener(ev, fn),
      });
      up.on('data', (chunk: Buffer) => this.onUpstreamData(up, chunk));
      up.on('end', () => this.onUpstreamGone(up));
      up.on('close', () => this.onUpstreamGone(up));
      then();
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) return this.onUpstreamGone(up);
      if (n + 1 < this.deps.attempts && RETRYABLE.has(err.code ?? '')) {
        setTimeout(() => this.dial(t, key, capsuleId, port, n + 1, then), this.deps.backoffMs * (n + 1));
        return;
      }
      const pinned = t.tls ? agentTlsFailure(err, `https://${t.host}:${t.port}`) : undefined;
      if (pinned) return this.refuse(proxyFailure(502, pinned, capsuleId));
      this.refuse(
        portNotOpen(
          capsuleId,
          port,
          `nothing answered on port ${port} in the capsule (${err.code ?? err.message}); is the server running and listening?`,
        ),
      );
    });
  }

  private onUpstreamGone(up: net.Socket): void {
    if (up !== this.upstream || this.closed) return;
    this.upstream = undefined;
    this.upKey = '';
    up.destroy();
    if (this.res === 'close' || this.res === 'tunnel') {
      // The body ran to the connection's end: so does the client's.
      this.finish();
    } else if (!this.idle()) {
      // Cut off mid-response: the client must see the connection fail, not a short answer.
      this.destroy();
    } else if (this.clientEnded) this.destroy();
    // Else the server closed an idle keep-alive connection: the next request dials again.
  }

  private readonly onClientDrain = (): void => {
    this.clientBackpressure = false;
    this.upstream?.resume();
  };

  /**
   * Queues bytes for the client. Pieces that sit side by side in one received chunk (a response head
   * and its body, several small responses) are joined again, so they leave in one write.
   */
  private toClient(buf: Buffer): void {
    if (buf.length === 0) return;
    const out = this.clientOut;
    if (out && out.buffer === buf.buffer && out.byteOffset + out.length === buf.byteOffset) {
      this.clientOut = Buffer.from(out.buffer, out.byteOffset, out.length + buf.length);
      return;
    }
    this.flushClient();
    this.clientOut = buf;
  }

  private flushClient(): void {
    const buf = this.clientOut;
    this.clientOut = undefined;
    if (!buf || this.closed) return;
    if (!this.client.write(buf) && !this.clientBackpressure) {
      this.clientBackpressure = true;
      this.upstream?.pause();
    }
  }

  private onUpstreamData(up: net.Socket, chunk: Buffer): void {
    if (up !== this.upstream || this.closed) return;
    this.upPending = this.upPending.length ? Buffer.concat([this.upPending, chunk]) : chunk;
    this.responseLoop();
    this.flushClient();
  }

  private responseLoop(): void {
    while (this.upPending.length > 0 && !this.closed) {
      switch (this.res) {
        case 'head':
          if (!this.takeResponseHead()) return;
          break;
        case 'length': {
          const n = Math.min(this.resLeft, this.upPending.length);
          this.toClient(this.upPending.subarray(0, n));
          this.upPending = this.upPending.subarray(n);
          this.resLeft -= n;
          if (this.resLeft === 0) this.responseDone();
          break;
        }
        case 'chunked': {
          const n = this.resChunks.scan(this.upPending);
          if (n < 0) return this.destroy();
          this.toClient(this.upPending.subarray(0, n));
          this.upPending = this.upPending.subarray(n);
          if (this.resChunks.done) this.responseDone();
          break;
        }
        case 'close':
        case 'tunnel':
          this.toClient(this.upPending);
          this.upPending = EMPTY;
          break;
      }
    }
  }

  private takeResponseHead(): boolean {
    const end = headEnd(this.upPending);
    if (end < 0) {
      if (this.upPending.length > MAX_HEAD_BYTES) this.destroy();
      return false;
    }
    const front = this.inFlight[0];
    const head = parseHead(this.upPending, end, 'response');
    if (!front || typeof head === 'string') return (this.destroy(), false);
    const status = Number(head.start[1]);
    if (front.upgrade && status === 101) {
      this.toClient(this.upPending);
      this.upPending = EMPTY;
      this.inFlight.shift();
      this.res = 'tunnel';
      this.req = 'tunnel';
      this.client.setTimeout(0);
      // A tunnel's upstream is fixed: the relay carries it (no idle timeout, like the JS tunnel).
      if (this.deps.relay && !this.upTls) {
        this.pin(0);
        return false;
      }
      this.flowClient();
      this.pump();
      return false;
    }
    const body = responseBody(head, status, front.method);
    if (typeof body === 'string') return (this.destroy(), false);
    this.toClient(this.responseHeadOut(head, end, front));
    this.upPending = this.upPending.subarray(end);
    if (status >= 100 && status < 200) return true; // interim (100 Continue): the final answer follows
    if (hasToken(head, 'connection', 'close') || head.start[0] === 'HTTP/1.0') this.endAfterResponse = true;
    if (body.kind === 'none') this.responseDone();
    else if (body.kind === 'length') {
      this.res = 'length';
      this.resLeft = body.n;
    } else if (body.kind === 'chunked') {
      this.res = 'chunked';
      this.resChunks = new ChunkedScanner();
    } else this.res = 'close';
    return true;
  }

  private responseHeadOut(head: Head, end: number, front: InFlight): Buffer {
    const li = front.locationPrefix ? head.names.indexOf('location') : -1;
    if (li < 0) return this.upPending.subarray(0, end);
    const loc = rewriteLocation(
      head.values[li] ?? '',
      { host: front.host, port: front.port, path: '' },
      front.locationPrefix,
    );
    return Buffer.from(
      `${head.text.slice(0, head.from[li])}location: ${loc}${head.text.slice(head.to[li])}\r\n\r\n`,
      'latin1',
    );
  }

  /**
   * The capsule went for good: a request still waiting for its answer (nothing of it sent) gets
   * E2B's 502 "The sandbox was not found" and the connection ends; otherwise it is cut. (An h2
   * stream the native TLS front carries on this connection reaches its client as that answer.)
   */
  private capsuleGone(capsuleId: string): void {
    if (this.closed) return;
    if (this.inFlight.length > 0 && this.res === 'head' && this.upPending.length === 0) {
      this.toClient(
        Buffer.from(
          guestErrorResponse(
            sandboxNotFound(capsuleId, `capsule ${capsuleId} was destroyed while this request waited for its answer`),
            'Bad Gateway',
          ),
        ),
      );
      return this.finish();
    }
    this.destroy();
  }

  private responseDone(): void {
    const front = this.inFlight.shift();
    this.res = 'head';
    // The server said it closes: finish the client's connection the same way.
    if (this.endAfterResponse) return this.finish();
    if (front?.upgrade && this.req === 'await-upgrade') {
      // The upgrade was refused with a normal answer: back to reading requests.
      this.req = 'head';
      this.flowClient();
      this.pump();
    }
    if (this.idle()) {
      // What comes next (an error answer, another upstream, the API server) must follow these bytes.
      this.flushClient();
      if (this.clientEnded) return this.finish();
      const fn = this.onIdle;
      this.onIdle = undefined;
      fn?.();
    }
  }
}
