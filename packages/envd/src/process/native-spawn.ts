// Starts pipe processes with @wrenn/native's spawnProcess (clone with CLONE_VM|CLONE_VFORK) rather
// than child_process.spawn, whose fork copies the page tables of all of envd (~50 MB, milliseconds
// per start). NativeChild looks like a ChildProcess to PipeProcess: pid, stdin/stdout/stderr
// sockets over the pipes, kill(), and 'exit'/'close' with Node's (code, signal) semantics.
// When the addon cannot be loaded, nativeSpawnAvailable() is false and the launcher uses
// child_process (said once on stderr). WRENN_ENVD_NATIVE_SPAWN=0 turns it off (for comparisons).
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type { NativeBinding } from '@wrenn/native';
import { signalName, spawnError } from '@wrenn/native/spawn-results';

/** What envd uses of the addon (typed by @wrenn/native; the import is types only). */
type SpawnBinding = Pick<NativeBinding, 'createReaper' | 'spawnProcess'>;

export interface NativeSpawnOptions {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  stdin: boolean;
  /** Switch to this identity (uid, gid and exactly these supplementary groups). */
  identity?: { uid: number; gid: number; groups: number[] };
}

let binding: SpawnBinding | null | undefined;
let reaper: object | undefined;
const running = new Map<number, NativeChild>();

function load(): SpawnBinding | null {
  if (process.env.WRENN_ENVD_NATIVE_SPAWN === '0') return null;
  try {
    // In the bundle this resolves node_modules/@wrenn/native next to envd.cjs; in the repo, the workspace package.
    const b = createRequire(import.meta.url)('@wrenn/native/addon') as Partial<SpawnBinding>;
    if (typeof b.spawnProcess !== 'function' || typeof b.createReaper !== 'function')
      throw new Error('the addon has no spawnProcess (an older build)');
    return b as SpawnBinding;
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0];
    process.stderr.write(
      `${JSON.stringify({ level: 'warn', msg: 'native spawn unavailable; starting processes with child_process.spawn', reason })}\n`,
    );
    return null;
  }
}

/** Loads the addon on first use; false means: use child_process. */
export function nativeSpawnAvailable(): boolean {
  if (binding === undefined) binding = load();
  return binding !== null;
}

function onExit(pid: number, code: number | null, signal: number | null): void {
  const child = running.get(pid);
  if (!child) return;
  running.delete(pid);
  child.exited(code, signal === null ? null : signalName(signal));
}

/** Starts the process in its own session with pipes; throws spawn errors like Node's (err.code ENOENT...). */
export function spawnNative(opts: NativeSpawnOptions): NativeChild {
  if (!nativeSpawnAvailable()) throw new Error('native spawn is not available');
  const b = binding as SpawnBinding;
  reaper ??= b.createReaper(onExit);
  const env: string[] = [];
  for (const key in opts.env) env.push(`${key}=${opts.env[key]}`);
  const r = b.spawnProcess(reaper, {
    file: opts.file,
    argv: [opts.file, ...opts.args],
    env,
    cwd: opts.cwd,
    stdin: opts.stdin,
    ...(opts.identity ?? {}),
  });
  if ('errno' in r) throw spawnError(opts.file, r.errno, r.stage);
  const child = new NativeChild(r.pid, r.stdin, r.stdout, r.stderr);
  running.set(r.pid, child);
  return child;
}

/** A running native child: the parts of ChildProcess that PipeProcess uses. */
export class NativeChild extends EventEmitter {
  readonly stdin: Socket | null;
  readonly stdout: Socket;
  readonly stderr: Socket;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  private openStreams: number;
  private hasExited = false;

  constructor(
    readonly pid: number,
    stdinFd: number,
    stdoutFd: number,
    stderrFd: number,
  ) {
    super();
    this.stdin = stdinFd >= 0 ? new Socket({ fd: stdinFd, readable: false, writable: true }) : null;
    this.stdout = new Socket({ fd: stdoutFd, readable: true, writable: false });
    this.stderr = new Socket({ fd: stderrFd, readable: true, writable: false });
    const streams = [this.stdin, this.stdout, this.stderr].filter((s): s is Socket => s !== null);
    this.openStreams = streams.length;
    for (const s of streams) s.once('close', () => this.streamClosed());
  }

  /** Signals the process itself (not its group); false once it has exited, like ChildProcess.kill. */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.hasExited) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch (err) {
      this.emit('error', err);
      return false;
    }
  }

  /** Called by the reaper: 'exit' now, 'close' once every pipe closed too (ChildProcess's order). */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.hasExited = true;
    this.exitCode = code;
    this.signalCode = signal;
    // Like ChildProcess: nobody can read what is written to an exited process's stdin.
    this.stdin?.destroy();
    this.emit('exit', code, signal);
    if (this.openStreams === 0) this.emit('close', code, signal);
  }

  private streamClosed(): void {
    if (--this.openStreams === 0 && this.hasExited) this.emit('close', this.exitCode, this.signalCode);
  }
}
