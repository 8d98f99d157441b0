// spawnNative / execFileNative: child_process.spawn and execFile for a big Node process, on the
// addon's spawnProcess (clone with CLONE_VM|CLONE_VFORK). Node forks, copying the page tables of
// the whole parent: 3-5 ms per spawn from the host agent on 2 cores (tens of ms under load), where
// a vfork costs ~1 ms whatever the parent's size.
// Exits come from one reaper per process (a pidfd per child in this thread's event loop; it waits
// only for pids it started, never waitpid(-1), so child_process's children stay libuv's).
// Without the addon (or with WRENN_NATIVE_SPAWN=0, for comparisons) both run on child_process.
import { spawn as nodeSpawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { type NativeBinding, native, type SpawnStdio } from './binding.js';
import { NativeChild, NativeSpawner } from './native-child.js';
import { spawnError } from './spawn-results.js';

/** A child's fd: a new pipe, /dev/null, the same fd of ours ('inherit'), or a dup of one of our fds. */
export type StdioEntry = 'pipe' | 'ignore' | 'inherit' | number;

export interface SpawnNativeOptions {
  /** Entry i becomes the child's fd i (default ['pipe', 'pipe', 'pipe']); fds 0-2 missing are /dev/null. */
  stdio?: readonly StdioEntry[];
  /** The whole environment (default process.env). */
  env?: NodeJS.ProcessEnv | Record<string, string>;
  /** Default: our cwd. */
  cwd?: string;
  /** Own session and process group (setsid), as child_process's detached. */
  detached?: boolean;
}

/** What spawnNative returns: the parts of ChildProcess its users need (the fallback is a real ChildProcess). */
export interface SpawnedChild extends EventEmitter {
  /** undefined when the start failed ('error' follows on the next tick). */
  readonly pid: number | undefined;
  /** The parent's end of each 'pipe' entry, null elsewhere. */
  readonly stdio: readonly (Socket | null)[];
  readonly stdin: Socket | null;
  readonly stdout: Socket | null;
  readonly stderr: Socket | null;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  kill(signal?: NodeJS.Signals | number): boolean;
  /** The running child no longer keeps the event loop alive (its pipes still do until closed). */
  unref(): void;
  ref(): void;
}

export interface RunNativeOptions {
  env?: NodeJS.ProcessEnv | Record<string, string>;
  cwd?: string;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
}

export interface RunNativeResult {
  /** Exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** execFileNative's rejection on a non-zero exit: like execFile's (code, signal, stdout, stderr, cmd). */
export interface ExecNativeError extends Error {
  code: number | string | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  cmd: string;
}

type SpawnBinding = Pick<NativeBinding, 'createReaper' | 'spawnProcess' | 'setReaperRef'>;

function load(): SpawnBinding | null {
  if (process.env.WRENN_NATIVE_SPAWN === '0') return null;
  try {
    const b = native();
    if (typeof b.spawnProcess !== 'function' || typeof b.setReaperRef !== 'function') return null; // an older build
    return b;
  } catch {
    return null;
  }
}

const spawner = new NativeSpawner<SpawnBinding>(load);

/** True when spawns go through the addon; false: child_process. */
export function nativeSpawnAvailable(): boolean {
  return spawner.available();
}

function envList(env: NodeJS.ProcessEnv | Record<string, string>): string[] {
  const out: string[] = [];
  for (const key in env) {
    const v = env[key];
    if (v !== undefined) out.push(`${key}=${v}`);
  }
  return out;
}

/**
 * Starts `file` (searched in env.PATH without a slash) like child_process.spawn with these options.
 * A failed start gives pid undefined and an 'error' event on the next tick, as ChildProcess does.
 */
export function spawnNative(file: string, args: readonly string[], opts: SpawnNativeOptions = {}): SpawnedChild {
  const stdio = opts.stdio ?? ['pipe', 'pipe', 'pipe'];
  for (const [i, e] of stdio.entries()) {
    const ok =
      e === 'pipe' || e === 'ignore' || e === 'inherit' || (typeof e === 'number' && Number.isInteger(e) && e >= 0);
    if (!ok)
      throw new TypeError(
        `spawnNative: stdio[${i}] must be 'pipe', 'ignore', 'inherit' or an fd number, not ${String(e)}`,
      );
  }
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  if (!nativeSpawnAvailable()) {
    return nodeSpawn(file, args, {
      stdio: [...stdio],
      env,
      cwd,
      detached: opts.detached ?? false,
    }) as unknown as SpawnedChild;
  }
  const { binding: b, reaper } = spawner.start();
  const r = b.spawnProcess(reaper, {
    file,
    argv: [file, ...args],
    env: envList(env),
    cwd,
    stdio: stdio.map((e, i): SpawnStdio => (e === 'inherit' ? i : e)),
    setsid: opts.detached ?? false,
  });
  if ('errno' in r) {
    const failed = new NativeChild(
      undefined,
      stdio.map(() => -1),
    );
    const err = spawnError(file, r.errno, r.stage);
    process.nextTick(() => failed.emit('error', err));
    return failed;
  }
  return spawner.track(new NativeChild(r.pid, r.fds, (pid, on) => b.setReaperRef(reaper, pid, on)));
}

/** Runs `file args` to its end and collects its output; rejects only when it could not be started. */
export function runNative(
  file: string,
  args: readonly string[],
  opts: RunNativeOptions = {},
): Promise<RunNativeResult> {
  return new Promise((resolve, reject) => {
    const withInput = opts.input !== undefined;
    const child = spawnNative(file, args, {
      stdio: [withInput ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failed = false;
    child.once('error', (e: Error) => {
      failed = true;
      reject(e);
    });
    if (child.pid === undefined && child.stdout === null) return; // start failed: 'error' comes next tick
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (failed) return;
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {}); // the program may exit before reading everything; its exit code tells
      child.stdin.end(opts.input);
    }
  });
}

/**
 * execFile on the native spawn: resolves with the output of a zero exit; rejects with the program's
 * stderr (else stdout) in the message on any other end, or with spawn's error (err.code ENOENT...).
 */
export async function execFileNative(
  file: string,
  args: readonly string[],
  opts: RunNativeOptions = {},
): Promise<RunNativeResult> {
  const r = await runNative(file, args, opts);
  if (r.code === 0) return r;
  const cmd = [file, ...args].join(' ');
  const how = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const said = r.stderr.trim() || r.stdout.trim();
  const err = new Error(`${cmd} failed (${how})${said ? `: ${said}` : ''}`) as ExecNativeError;
  err.code = r.code;
  err.signal = r.signal;
  err.stdout = r.stdout;
  err.stderr = r.stderr;
  err.cmd = cmd;
  throw err;
}
