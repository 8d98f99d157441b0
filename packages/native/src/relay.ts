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
import { EventEmitter } from 'node:events';
import type net from 'node:net';
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
  | 'handover-failed';

export interface RelayResult {
  /** Bytes moved from the first socket's peer to the second's (the handover's included). */
  aToB: number;
  bToA: number;
  reason: RelayEndReason;
  /** errno of a failed socket (reason 'error'), else 0. */
  errno: number;
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
}

interface RelayBinding {
  relayStart(onDone: (id: number, aToB: number, bToA: number, reason: string, errno: number) => void, mode: 'copy' | 'splice'): void;
  relayAdd(fdA: number, fdB: number, group: string, idleMs: number): number;
  relayClose(id: number): void;
  relayCloseGroup(group: string): void;
  relayStats(): RelayStats;
  relayRef(on: boolean): void;
}

type Waiter = (id: number, aToB: number, bToA: number, reason: string, errno: number) => void;

let started: { b: RelayBinding; waiting: Map<number, Waiter> } | undefined;
let unavailable: string | undefined;

function relay(): { b: RelayBinding; waiting: Map<number, Waiter> } {
  if (started) return started;
  if (unavailable) throw new Error(unavailable);
  try {
    const b = native() as unknown as RelayBinding;
    if (typeof b.relayStart !== 'function') throw new Error('the built addon has no relay (rebuild it: node packages/native/build.mjs)');
    const mode = process.env.WRENN_RELAY_MODE === 'splice' ? 'splice' : 'copy';
    const waiting = new Map<number, Waiter>();
    b.relayStart((id, ab, ba, reason, errno) => {
      const fn = waiting.get(id);
      waiting.delete(id);
      if (waiting.size === 0) b.relayRef(false);
      fn?.(id, ab, ba, reason, errno);
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

/** Closes every relayed pair of a group (their 'close' events follow, reason 'group'). */
export function relayCloseGroup(group: string): void {
  started?.b.relayCloseGroup(group);
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
  if (!(idleMs >= 0) || !Number.isFinite(idleMs)) throw new Error(`relaySockets: idleMs must be a finite number >= 0, got ${idleMs}`);
  const pair = new RelayedPair();
  let handed = [0, 0];
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
    end({ aToB: handed[0] ?? 0, bToA: handed[1] ?? 0, reason: pair.closeWanted ? 'closed' : idle ? 'idle' : 'handover-failed', errno: 0 });
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
    if (fromA.length > 0) b.write(fromA);
    if (fromB.length > 0) a.write(fromB);
    handed = [(handed[0] ?? 0) + fromA.length, (handed[1] ?? 0) + fromB.length];
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
      id = binding.relayAdd(fa, fb, opts.group ?? '', idleMs);
    } catch {
      return fail();
    }
    pair.id = id;
    clearTimeout(timer);
    pair.removeListener('abort', fail);
    if (waiting.size === 0) binding.relayRef(true);
    const [ha = 0, hb = 0] = handed;
    waiting.set(id, (_id, ab, ba, reason, errno) => end({ aToB: ab + ha, bToA: ba + hb, reason: reason as RelayEndReason, errno }));
    for (const s of [a, b]) {
      s.removeListener('close', fail);
      s.destroy();
    }
  };
  step();
  return pair;
}
