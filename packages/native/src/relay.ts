// Hands two connected Node sockets over to the native relay thread (cpp/relay.cc), which then moves
// their bytes both ways without any per-chunk JS work (half-close, back-pressure, idle timeout).
//
// The handover keeps every byte in order: reading stops on both sockets, whatever Node already read
// but nobody consumed is written across, and only when both sockets' writes are all in the kernel
// (writableLength 0) are the fds dup'ed into the relay and the Node sockets destroyed (libuv drops
// its epoll registration; the dups keep the connections open). The sockets belong to the relay from
// the call on: their listeners are removed.
//
// WRENN_RELAY_MODE=splice moves bytes with splice() through a pipe per direction; the default,
// copy, uses recv/send with a scratch buffer (fewer syscalls for small messages).
//
// HTTP mode (opts.http): the relay thread also does a keep-alive HTTP/1.1 connection's per-request
// work for one capsule port (cpp/http1.h): request heads checked against the route and rewritten,
// responses framed, redirects kept under a path prefix. What it does not take on itself comes back
// as reason 'handback' with the client socket and the bytes it had read, for JS to carry on.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { native } from './binding.js';

export type RelayEndReason =
  /** Both directions ended (EOF passed on as shutdown) and everything was delivered. */
  | 'done'
  /** No byte moved either way for idleMs. */
  | 'idle'
  /** close() on the pair. */
  | 'closed'
  /** relayCloseGroup() of the pair's group. */
  | 'group'
  /** A socket failed (reset, broken pipe): both were closed with a reset. */
  | 'error'
  /** A socket failed or closed while being handed over; both were destroyed. */
  | 'handover-failed'
  /** HTTP mode: the client connection is JS's again (RelayResult.client); the upstream is closed. */
  | 'handback';

export interface RelayResult {
  /** Bytes moved from the first socket's peer to the second's (the handover's included). */
  aToB: number;
  bToA: number;
  reason: RelayEndReason;
  /** errno of a failed socket (reason 'error'), else 0. */
  errno: number;
  /** Reason 'handback': the client connection, readable and writable, and what was read from it but not forwarded. */
  client?: net.Socket;
  rest?: Buffer;
}

/** HTTP mode: which requests the relay carries itself, and where JS left the connection. */
export interface RelayHttp {
  /** How the connection's first request was routed (later ones must route the same way). */
  kind: 'path' | 'host' | 'header';
  /** Path routing: /proxy/<id>/<P>, taken off targets and kept on redirects. */
  prefix?: string;
  /** The first request's Host value (undefined: it had none). */
  host?: string;
  /** Header routing: E2b-Sandbox-Id and E2b-Sandbox-Port. */
  sandboxId?: string;
  sandboxPort?: string;
  /** The client's address for X-Forwarded-For ('' adds none). */
  remote: string;
  /** The capsule server's address (absolute redirects to it keep the prefix). */
  targetHost: string;
  targetPort: number;
  /** Requests sent upstream and not answered yet: true for a HEAD. */
  inflight: boolean[];
  /** The request body under way: none ('head'), reqLeft more bytes, or a chunked one from its start. */
  req: 'head' | 'length' | 'chunked';
  reqLeft?: number;
  /** Egress: request heads go out as written (no X-Forwarded-* added, no proxy fields dropped). */
  transparent?: boolean;
  /** Bytes the caller read from the client / upstream and did not forward (they come first). */
  clientBytes?: Buffer;
  upstreamBytes?: Buffer;
}

export interface RelayStats {
  /** Pairs the relay thread carries now. */
  active: number;
  /** Pairs handed over since the start. */
  added: number;
  /** Bytes the relay thread moved since the start (both ways). */
  bytes: number;
}

export interface RelayOptions {
  /** Key that relayCloseGroup() closes the pair by (e.g. a capsule id). */
  group?: string;
  /** Closes the pair after this long without a byte either way; 0 (default): never. */
  idleMs?: number;
  /** HTTP mode (a = client, b = upstream). Bytes Node already read from either side go to the relay's parser, not across. */
  http?: RelayHttp;
}

interface RelayBinding {
  relayStart(onDone: Waiter, mode: 'copy' | 'splice'): void;
  relayAdd(fdA: number, fdB: number, group: string, idleMs: number, http?: RelayHttp): number;
  relayClose(id: number): void;
  relayCloseGroup(group: string, answer?: string): void;
  relayYieldGroup(group: string): void;
  relayStats(): RelayStats;
  relayRef(on: boolean): void;
}

type Waiter = (
  id: number,
  aToB: number,
  bToA: number,
  reason: string,
  errno: number,
  fd?: number,
  rest?: Buffer,
) => void;

let started: { b: RelayBinding; waiting: Map<number, Waiter> } | undefined;
let unavailable: string | undefined;

function relay(): { b: RelayBinding; waiting: Map<number, Waiter> } {
  if (started) return started;
  if (unavailable) throw new Error(unavailable);
  try {
    const b = native() as unknown as RelayBinding;
    if (typeof b.relayStart !== 'function')
      throw new Error('the built addon has no relay (rebuild it: node packages/native/build.mjs)');
    const mode = process.env.WRENN_RELAY_MODE === 'splice' ? 'splice' : 'copy';
    const waiting = new Map<number, Waiter>();
    b.relayStart((id, ab, ba, reason, errno, fd, rest) => {
      const fn = waiting.get(id);
      waiting.delete(id);
      if (waiting.size === 0) b.relayRef(false);
      if (fn) fn(id, ab, ba, reason, errno, fd, rest);
      else if (fd !== undefined) new net.Socket({ fd }).destroy();
    }, mode);
    started = { b, waiting };
    return started;
  } catch (err) {
    unavailable = `native relay unavailable: ${err instanceof Error ? err.message : String(err)}`;
    throw new Error(unavailable);
  }
}

/** Whether the native relay can be used here (the addon is built and has it); starts it. */
export function relayAvailable(): boolean {
  try {
    relay();
    return true;
  } catch {
    return false;
  }
}

export function relayStats(): RelayStats {
  return started ? started.b.relayStats() : { active: 0, added: 0, bytes: 0 };
}

/** Closes every relayed pair of a group (their 'close' events follow, reason 'group'); an HTTP-mode client whose request waits for its answer gets `answer` first (raw bytes, best effort). */
export function relayCloseGroup(group: string, answer?: string): void {
  started?.b.relayCloseGroup(group, answer);
}

/**
 * Hands every HTTP-mode pair of a group back to JS at its next request (right away when nothing is
 * in flight): their 'close' events follow with reason 'handback'. Other pairs are left as they are.
 */
export function relayYieldGroup(group: string): void {
  started?.b.relayYieldGroup(group);
}

/** A socket pair on its way to, or inside, the relay. Emits 'close' once with a RelayResult. */
export class RelayedPair extends EventEmitter {
  /** The relay's id once the handover is done. */
  id: number | undefined;
  result: RelayResult | undefined;
  /** close() was called (before the handover finished, it aborts it). */
  closeWanted = false;

  /** Ends the pair (both connections closed); 'close' follows. */
  close(): void {
    if (this.result) return;
    this.closeWanted = true;
    if (this.id !== undefined) started?.b.relayClose(this.id);
    else this.emit('abort');
  }

  /** Same as close(): lets a pair stand where a socket is tracked. */
  destroy(): void {
    this.close();
  }
}

const EMPTY = Buffer.alloc(0);

/** What Node read from the socket and nobody consumed; reading stops for good. */
function takeBuffered(s: net.Socket): Buffer {
  const chunks: Buffer[] = [];
  let c: Buffer | null;
  while ((c = s.read() as Buffer | null) !== null) chunks.push(c);
  // read() may have asked libuv for more; nothing runs between here and the stop.
  const h = (s as unknown as { _handle?: { reading?: boolean; readStop?(): number } })._handle;
  if (h?.readStop) {
    h.reading = false;
    h.readStop();
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

function fdOf(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/**
 * Gives two connected sockets to the relay thread. Throws when the relay is unavailable (check
 * relayAvailable() first to keep a JS path). Bytes the caller wrote before the call go out first.
 */
export function relaySockets(a: net.Socket, b: net.Socket, opts: RelayOptions = {}): RelayedPair {
  const { b: binding, waiting } = relay();
  const idleMs = opts.idleMs ?? 0;
  if (!(idleMs >= 0) || !Number.isFinite(idleMs))
    throw new Error(`relaySockets: idleMs must be a finite number >= 0, got ${idleMs}`);
  const pair = new RelayedPair();
  let handed = [0, 0];
  // HTTP mode: what Node read and nobody consumed goes to the relay's parser.
  const kept: [Buffer[], Buffer[]] = [
    opts.http?.clientBytes ? [opts.http.clientBytes] : [],
    opts.http?.upstreamBytes ? [opts.http.upstreamBytes] : [],
  ];
  const end = (r: RelayResult) => {
    if (pair.result) return;
    pair.result = r;
    // Never synchronously inside relaySockets: the caller attaches its listener after the call.
    process.nextTick(() => pair.emit('close', r));
  };
  let idle = false;
  const fail = () => {
    clearTimeout(timer);
    for (const s of [a, b]) {
      s.removeListener('close', fail);
      s.destroy();
    }
    end({
      aToB: handed[0] ?? 0,
      bToA: handed[1] ?? 0,
      reason: pair.closeWanted ? 'closed' : idle ? 'idle' : 'handover-failed',
      errno: 0,
    });
  };
  // A peer that never takes what is queued for it must not hold the handover forever.
  const timer =
    idleMs > 0
      ? setTimeout(() => {
          idle = true;
          fail();
        }, idleMs)
      : undefined;
  for (const s of [a, b]) {
    for (const ev of ['data', 'end', 'close', 'drain', 'timeout', 'readable', 'error']) s.removeAllListeners(ev);
    s.on('error', () => undefined);
    s.once('close', fail);
    s.setTimeout(0);
    s.pause();
  }
  pair.once('abort', fail);

  const step = (): void => {
    if (pair.result) return;
    if (pair.closeWanted || a.destroyed || b.destroyed) return fail();
    const fromA = takeBuffered(a);
    const fromB = takeBuffered(b);
    if (opts.http) {
      if (fromA.length > 0) kept[0].push(fromA);
      if (fromB.length > 0) kept[1].push(fromB);
    } else {
      if (fromA.length > 0) b.write(fromA);
      if (fromB.length > 0) a.write(fromB);
      handed = [(handed[0] ?? 0) + fromA.length, (handed[1] ?? 0) + fromB.length];
    }
    if (a.writableLength > 0 || b.writableLength > 0) {
      // Writes complete in order: an empty write's callback means everything before it is out.
      let n = 2;
      const flushed = (err?: Error | null) => {
        if (err) return fail();
        if (--n === 0) step();
      };
      a.write(EMPTY, flushed);
      b.write(EMPTY, flushed);
      return;
    }
    const fa = fdOf(a);
    const fb = fdOf(b);
    let id: number;
    try {
      if (fa < 0 || fb < 0) throw new Error('socket has no fd');
      id = opts.http
        ? binding.relayAdd(fa, fb, opts.group ?? '', idleMs, {
            ...opts.http,
            clientBytes: Buffer.concat(kept[0]),
            upstreamBytes: Buffer.concat(kept[1]),
          })
        : binding.relayAdd(fa, fb, opts.group ?? '', idleMs);
    } catch {
      return fail();
    }
    pair.id = id;
    clearTimeout(timer);
    pair.removeListener('abort', fail);
    if (waiting.size === 0) binding.relayRef(true);
    const [ha = 0, hb = 0] = handed;
    waiting.set(id, (_id, ab, ba, reason, errno, fd, rest) => {
      const r: RelayResult = { aToB: ab + ha, bToA: ba + hb, reason: reason as RelayEndReason, errno };
      if (fd !== undefined) {
        r.client = new net.Socket({ fd, readable: true, writable: true });
        r.rest = rest ?? Buffer.alloc(0);
      }
      end(r);
    });
    for (const s of [a, b]) {
      s.removeListener('close', fail);
      s.destroy();
    }
  };
  step();
  return pair;
}
