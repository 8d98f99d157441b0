// A new envd's first command costs it about three times the CPU of the next one (in a capsule 18 vs
// 6 ms, bench/idle-exec.mjs): it is the first run of the whole Start path (HTTP parsing, the Start
// fast path, protobuf, the spawn, pipes and the end stream), so V8 runs it without inline caches,
// compiles node's own functions lazily and allocates first buffers. Idleness does not bring that
// cost back (an exec after 40 s idle costs about what one right after another exec does); what a
// host of many idle capsules sees is that most execs are a capsule's first one. So envd pays it
// once, in the background: at the first beat of its heartbeat after start, if no command ran yet,
// it sends itself one Start of `true` over loopback, as a client would. That call is not listed
// (Process.List, Connect): it carries a header with a random value only this process knows, which
// the process service checks. WRENN_ENVD_WARM_UP=0 turns it off (for comparisons).
import { closeSync, openSync, readSync } from 'node:fs';
import { connect } from 'node:net';
import { create, toBinary } from '@bufbuild/protobuf';
import { StartRequestSchema } from '@wrenn/protocol/gen/envd/process_pb';
import { envdHeartbeat, type Heartbeat } from './heartbeat.js';
import { START_PATH, startFastPathStats } from './rpc-fast/start-fast-path.js';
import type { EnvdState } from './state.js';

export const WARM_UP_HEADER = 'x-wrenn-warm-up';
/** How long the warm-up call may take before envd gives up on it (it is never retried). */
const WARM_UP_TIMEOUT_MS = 10_000;

let nonce: string | undefined;

/** Whether a request carries this process's warm-up mark (false before any warm-up was sent). */
export function isWarmUpCall(header: Headers): boolean {
  return nonce !== undefined && header.get(WARM_UP_HEADER) === nonce;
}

/** 16 random bytes as hex from /dev/urandom (node:crypto would add ~3 MB to every envd). */
function randomHex(): string {
  const fd = openSync('/dev/urandom', 'r');
  try {
    const b = Buffer.alloc(16);
    readSync(fd, b, 0, b.length, null);
    return b.toString('hex');
  } finally {
    closeSync(fd);
  }
}

/** The loopback address that reaches a server listening on `host`. */
function loopbackFor(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

export interface WarmUpOptions {
  port: number;
  host: string;
  state: EnvdState;
  /** The command (default `true`; tests use one that shows it ran). */
  command?: { cmd: string; args?: string[] };
}

/** One Start call over HTTP/1.1 to envd itself; resolves when the response ends (or fails). */
export function sendWarmUpCall(opts: WarmUpOptions): Promise<void> {
  nonce ??= randomHex();
  const message = toBinary(
    StartRequestSchema,
    create(StartRequestSchema, { process: opts.command ?? { cmd: 'true' } }),
  );
  const body = Buffer.alloc(5 + message.length);
  body.writeUInt32BE(message.length, 1);
  body.set(message, 5);
  const token = opts.state.accessToken;
  const head = [
    `POST ${START_PATH} HTTP/1.1`,
    'host: envd',
    'content-type: application/connect+proto',
    'connect-protocol-version: 1',
    `content-length: ${body.length}`,
    `${WARM_UP_HEADER}: ${nonce}`,
    ...(token ? [`x-access-token: ${token}`] : []),
    'connection: close',
    '',
    '',
  ].join('\r\n');
  return new Promise((resolve) => {
    const socket = connect({ port: opts.port, host: loopbackFor(opts.host) });
    socket.setTimeout(WARM_UP_TIMEOUT_MS, () => socket.destroy());
    socket.once('connect', () => socket.end(Buffer.concat([Buffer.from(head), body])));
    socket.on('data', () => undefined); // the response is read and dropped
    socket.once('close', () => resolve());
    socket.once('error', () => undefined); // best effort: 'close' follows
  });
}

/**
 * At the first beat of `heartbeat` (1 s after start while active), sends the warm-up call unless a
 * Start was served already (then the path is warm). Returns a function that cancels it.
 */
export function startExecWarmUp(
  opts: WarmUpOptions & { heartbeat?: Heartbeat; startsServed?: () => number },
): () => void {
  if (process.env.WRENN_ENVD_WARM_UP === '0') return () => undefined;
  const startsServed = opts.startsServed ?? (() => startFastPathStats.calls);
  const off = (opts.heartbeat ?? envdHeartbeat).on(() => {
    off();
    if (startsServed() === 0) void sendWarmUpCall(opts);
  });
  return off;
}
