// TLS termination in a native thread (cpp/tls-front.cc) for a listener's accepted connections: the
// TCP socket is handed over before Node read a byte, the thread runs the handshake (ALPN h2 or
// http/1.1, SNI) and then carries the connection's plaintext on a Unix socketpair whose other end
// comes back here as a plain net.Socket dressed like a TLSSocket for the code that reads it
// (alpnProtocol, servername, encrypted, the client's remote address). Node's event loop then does
// no TLS work at all, and the plaintext socket can go to the byte relay (relay.ts) like any
// plain-HTTP connection. Why not Node's TLS: see the top of cpp/tls-front.cc.
import net from 'node:net';
import { native } from './binding.js';

export interface TlsFrontStats {
  /** Connections the thread holds now (handshaking or open). */
  active: number;
  /** Handshakes done since the start. */
  handshakes: number;
  /** Connections refused or cut off since the start (bad ClientHello, handshake timeout, errors). */
  failed: number;
  /** h2 connections terminated in the thread since the start (cpp/h2-gateway.cc). */
  h2Sessions: number;
  /** HTTP/1.1 connections those opened into JS since the start. */
  h2Connections: number;
  /** h2 streams carried since the start. */
  h2Streams: number;
  /** Connections into JS of h2 sessions that exist now (abandoned ones JS has not closed yet included). */
  h2ConnectionsOpen: number;
  /** The most of those at once since the start or the last tlsFrontStats({ resetPeak: true }). */
  h2ConnectionsPeak: number;
  /** h2 sessions ended for idling (no open stream and no connection into JS for h2IdleMs). */
  h2IdleClosed: number;
}

/** What the handshake settled, on the plaintext socket (as a TLSSocket has them). */
export interface TlsFrontSocket extends net.Socket {
  alpnProtocol: 'h2' | 'http/1.1' | false;
  servername: string | false;
  encrypted: true;
}

export interface TlsFrontOptions {
  cert: Buffer;
  key: Buffer;
  /** A connection whose handshake is not done after this long is closed (slow or stuck ClientHello). */
  handshakeTimeoutMs: number;
  /**
   * An h2 session terminated in the thread that has no open stream and no connection into JS for
   * this long is ended with a GOAWAY (default handshakeTimeoutMs): silent or PING-only clients.
   */
  h2IdleMs?: number;
  /**
   * true: h2 connections are terminated in the thread and each of their streams arrives here as an
   * HTTP/1.1 request on a keep-alive connection of its own (alpnProtocol 'http/1.1'); false: JS gets
   * an h2 connection's plaintext (alpnProtocol 'h2') like any other.
   */
  h2Native?: boolean;
  /** Each connection once its handshake is done: its plaintext, readable and writable. */
  onConnection(socket: TlsFrontSocket): void;
}

export interface TlsFront {
  /** Hands an accepted TCP socket (nothing read from it yet) to the thread; false: it could not. */
  take(socket: net.Socket): boolean;
  /** Closes every connection still handshaking or open in the thread (the plaintext sockets JS holds too). */
  close(): void;
}

interface FrontBinding {
  tlsFrontStart(
    onReady: (
      ctx: number,
      id: number,
      fd: number,
      alpn: string,
      servername: string,
      address: string,
      port: number,
      family: number,
    ) => void,
  ): void;
  tlsFrontContext(cert: Buffer, key: Buffer, handshakeMs: number, h2Native: boolean, h2IdleMs?: number): number;
  tlsFrontAdd(ctx: number, fd: number): number;
  tlsFrontDrop(ctx: number): void;
  tlsFrontStats(resetPeak?: boolean): TlsFrontStats;
}

interface Peer {
  address: string;
  port: number;
  family: number;
}
type OnReady = (fd: number, alpn: string, servername: string, peer: Peer) => void;
let started: { b: FrontBinding; fronts: Map<number, OnReady> } | undefined;
let unavailable: string | undefined;

function front(): { b: FrontBinding; fronts: Map<number, OnReady> } {
  if (started) return started;
  if (unavailable) throw new Error(unavailable);
  try {
    const b = native() as unknown as FrontBinding;
    if (typeof b.tlsFrontStart !== 'function')
      throw new Error('the built addon has no TLS front (rebuild it: node packages/native/build.mjs)');
    const fronts = new Map<number, OnReady>();
    b.tlsFrontStart((ctx, _id, fd, alpn, servername, address, port, family) => {
      const fn = fronts.get(ctx);
      if (fn) fn(fd, alpn, servername, { address, port, family });
      else new net.Socket({ fd }).destroy();
    });
    started = { b, fronts };
    return started;
  } catch (err) {
    unavailable = `native TLS front unavailable: ${err instanceof Error ? err.message : String(err)}`;
    throw new Error(unavailable);
  }
}

/** Whether the native TLS front can be used here (the addon is built and has it); starts its thread. */
export function tlsFrontAvailable(): boolean {
  try {
    front();
    return true;
  } catch {
    return false;
  }
}

/** The front's counters; resetPeak: h2ConnectionsPeak starts again from the connections open now. */
export function tlsFrontStats(opts: { resetPeak?: boolean } = {}): TlsFrontStats {
  return started
    ? started.b.tlsFrontStats(opts.resetPeak === true)
    : {
        active: 0,
        handshakes: 0,
        failed: 0,
        h2Sessions: 0,
        h2Connections: 0,
        h2Streams: 0,
        h2ConnectionsOpen: 0,
        h2ConnectionsPeak: 0,
        h2IdleClosed: 0,
      };
}

/** A TLS front for one certificate; throws on a certificate or key OpenSSL refuses. */
export function createTlsFront(opts: TlsFrontOptions): TlsFront {
  const { b, fronts } = front();
  const ctx = b.tlsFrontContext(opts.cert, opts.key, opts.handshakeTimeoutMs, opts.h2Native === true, opts.h2IdleMs);
  const plain = new Set<net.Socket>();
  let closed = false;
  fronts.set(ctx, (fd, alpn, servername, peer) => {
    const s = new net.Socket({ fd, readable: true, writable: true }) as TlsFrontSocket;
    if (closed) return void s.destroy();
    Object.defineProperties(s, {
      remoteAddress: { value: peer.address || undefined, configurable: true },
      remotePort: { value: peer.port || undefined, configurable: true },
      remoteFamily: { value: peer.family ? `IPv${peer.family}` : undefined, configurable: true },
    });
    s.alpnProtocol = alpn === 'h2' || alpn === 'http/1.1' ? alpn : false;
    s.servername = servername || false;
    s.encrypted = true;
    plain.add(s);
    s.once('close', () => plain.delete(s));
    opts.onConnection(s);
  });
  return {
    take(socket) {
      if (closed) return false;
      const h = (socket as unknown as { _handle?: { fd?: number; reading?: boolean; readStop?(): number } })._handle;
      if (!h || typeof h.fd !== 'number' || h.fd < 0) return false;
      // Nothing was read yet ('connection' runs before any read completes); stop reading for good.
      h.reading = false;
      h.readStop?.();
      try {
        b.tlsFrontAdd(ctx, h.fd);
      } catch {
        return false;
      }
      // The thread holds its own copy of the fd.
      socket.destroy();
      return true;
    },
    close() {
      if (closed) return;
      closed = true;
      b.tlsFrontDrop(ctx);
      for (const s of plain) s.destroy();
      plain.clear();
      // Late ready callbacks for this context find no front and close their fd.
      setImmediate(() => fronts.delete(ctx));
    },
  };
}
