// Starts pipe processes with @wrenn/native's spawnProcess (clone with CLONE_VM|CLONE_VFORK) rather
// than child_process.spawn, whose fork copies the page tables of all of envd (~50 MB, milliseconds
// per start). The child is @wrenn/native's NativeChild (shared with the host's spawnNative): to
// PipeProcess it looks like a ChildProcess (pid, pipes as sockets, kill(), 'exit'/'close').
// When the addon cannot be loaded, nativeSpawnAvailable() is false and the launcher uses
// child_process (said once on stderr). WRENN_ENVD_NATIVE_SPAWN=0 turns it off (for comparisons).
import { createRequire } from 'node:module';
import type { NativeBinding } from '@wrenn/native';
import { NativeChild, NativeSpawner } from '@wrenn/native/native-child';
import { spawnError } from '@wrenn/native/spawn-results';

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

const spawner = new NativeSpawner<SpawnBinding>(load);

/** Loads the addon on first use; false means: use child_process. */
export function nativeSpawnAvailable(): boolean {
  return spawner.available();
}

/** Starts the process in its own session with pipes; throws spawn errors like Node's (err.code ENOENT...). */
export function spawnNative(opts: NativeSpawnOptions): { child: NativeChild; pid: number } {
  const { binding: b, reaper } = spawner.start();
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
  return { child: spawner.track(new NativeChild(r.pid, [r.stdin, r.stdout, r.stderr])), pid: r.pid };
}
