// Loads the compiled addon (build/Release/wrenn_native.node, built by build.mjs at npm install).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeBinding {
  receiveUffd(path: string, timeoutMs: number): { uffd: number; body: string };
  sendFd(path: string, fd: number, body: string): void;
  serveFaults(opts: {
    uffd: number;
    regions: { base: number; size: number; offset: number; pageSize: number }[];
    blockSize: number;
    blockGen: Int32Array;
    files: string[];
    stopFd: number;
    prefetchPages?: number;
  }): { faults: number; copiedBytes: number; zeroPages: number; removeEvents: number };
  registerRegion(size: number): { uffd: number; addr: number; size: number };
  readMemory(addr: number, len: number): Buffer;
  dataRanges(path: string): [number, number][];
  makePipe(): [number, number];
  /** Closes an fd the addon created (fs.closeSync warns about fds it did not open). */
  closeFd(fd: number): void;
  /** Sets the host name of the UTS namespace that process `pid` is in (needs root on the host). */
  setHostnameIn(pid: number, name: string): void;
  /**
   * The handle spawnProcess reports exits through: onExit(pid, exit code or null, signal number or null)
   * on the JS thread. Each child's pidfd is watched in the event loop (a running child keeps the loop
   * alive); `threads: true` (or a kernel without pidfd_open) reaps with a waitpid thread per child.
   */
  createReaper(onExit: (pid: number, code: number | null, signal: number | null) => void, opts?: { threads?: boolean }): object;
  /**
   * Starts `file` (PATH search in `env`'s PATH when it has no slash) with clone(CLONE_VM|CLONE_VFORK):
   * own session, stdin from a pipe (or /dev/null), stdout/stderr pipes, signals reset, every other fd
   * closed, cwd, and with `uid` the identity uid/gid/exactly `groups`. Returns the parent's pipe ends
   * (O_CLOEXEC; stdin -1 without a pipe), or where it failed (errno and stage: exec, chdir, setuid...).
   */
  spawnProcess(
    reaper: object,
    opts: { file: string; argv: string[]; env: string[]; cwd: string; stdin: boolean; uid?: number; gid?: number; groups?: number[] },
  ): { pid: number; stdin: number; stdout: number; stderr: number } | { errno: number; stage: string };
}

let cached: NativeBinding | undefined;

export function native(): NativeBinding {
  if (cached) return cached;
  const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
  const file = join(root, 'build/Release/wrenn_native.node');
  if (!existsSync(file)) {
    throw new Error(
      `${file} is missing: build it with \`npm install\` or \`node packages/native/build.mjs\` (needs g++, make, python3)`,
    );
  }
  cached = createRequire(import.meta.url)(file) as NativeBinding;
  return cached;
}
