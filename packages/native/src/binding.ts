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
  /**
   * A close-on-exec TCP socket bound to a numeric IPv4/IPv6 `address` and `port` (0: any) and
   * listening, for server.listen({ fd }) (node's own listen with a host runs its IPv6 regular
   * expression, milliseconds at first use on Node 22+); null when `address` is not numeric.
   * Throws an Error with `errno` when socket/bind/listen fail.
   */
  listenTcp(address: string, port: number, backlog: number): number | null;
  /** madvise(MADV_DONTNEED) on a page-aligned range of this process (envd's idle-memory.ts picks it). */
  adviseDontNeed(start: number, length: number): void;
  /** glibc's malloc_trim(0): whether memory went back to the system. */
  mallocTrim(): boolean;
  /** Closes an fd the addon created (fs.closeSync warns about fds it did not open). */
  closeFd(fd: number): void;
  /**
   * Calls onExit once, on the JS thread, when process `pid` (any process, not only our children)
   * has exited; a pidfd in the event loop, which it does not keep alive. Returns the watch id, or
   * -errno when the process cannot be watched (-ESRCH: it is already gone).
   */
  watchExit(pid: number, onExit: () => void): number;
  /** Stops a watch that has not fired. */
  unwatchExit(id: number): void;
  /** Sets the host name of the UTS namespace that process `pid` is in (needs root on the host). */
  setHostnameIn(pid: number, name: string): void;
  /**
   * The handle spawnProcess reports exits through: onExit(pid, exit code or null, signal number or null)
   * on the JS thread. Each child's pidfd is watched in the event loop (a running child keeps the loop
   * alive); `threads: true` (or a kernel without pidfd_open) reaps with a waitpid thread per child.
   */
  createReaper(
    onExit: (pid: number, code: number | null, signal: number | null) => void,
    opts?: { threads?: boolean },
  ): object;
  /**
   * Starts `file` (PATH search in `env`'s PATH when it has no slash) with clone(CLONE_VM|CLONE_VFORK):
   * own session (unless `setsid: false`), signals reset, cwd, and with `uid` the identity
   * uid/gid/exactly `groups`. The child's fds: with `stdio`, entry i becomes its fd i ('pipe': a new
   * pipe, the child reads fd 0 and writes the others; 'ignore': /dev/null; a number: that fd of ours,
   * dup'd), fds 0-2 are /dev/null when the array is shorter; without `stdio`, stdin is a pipe when
   * `stdin` is true (else /dev/null) and stdout/stderr are pipes. Every other fd is closed.
   * Returns the parent's pipe ends (O_CLOEXEC, -1 where no pipe; stdin/stdout/stderr repeat fds[0..2]),
   * or where it failed (errno and stage: exec, chdir, setuid...).
   */
  spawnProcess(
    reaper: object,
    opts: {
      file: string;
      argv: string[];
      env: string[];
      cwd: string;
      stdin?: boolean;
      stdio?: SpawnStdio[];
      setsid?: boolean;
      uid?: number;
      gid?: number;
      groups?: number[];
    },
  ): { pid: number; stdin: number; stdout: number; stderr: number; fds: number[] } | { errno: number; stage: string };
  /** Whether the running child `pid` keeps the event loop alive (ChildProcess.ref/unref); no-op once it exited. */
  setReaperRef(reaper: object, pid: number, ref: boolean): void;
  /**
   * open (openat2 with RESOLVE_NO_MAGICLINKS, RESOLVE_IN_ROOT with `inRoot` under `dirfd`; O_CLOEXEC
   * added; as a user never a non-directory on procfs), stat, mkdir, rename, removeTree (rm -rf, a
   * missing path is no error), readdir, realpath, entry and list (entries of a directory), and the
   * extended attributes of an open fd (fdSetXattrs replaces the prefix's and reports them back),
   * each as the user given (see FsAsUserRequest).
   */
  fsAsUser(req: FsAsUserRequest): Promise<FsAsUserResult>;
  /** A free loop device (autoclear) backed by `image`, mounted at `target`; resolves with the device. */
  loopMount(image: string, target: string, fstype: string, flags: number, data: string): Promise<string>;
  /** umount2(target, flags). */
  unmount(target: string, flags: number): Promise<void>;
  /** Binds directory `source` at `target` through an idmap ("<stored> <shown> <count>"), nosuid and nodev. */
  idmappedBind?(source: string, target: string, map: string): Promise<void>;
}

/** What fsAsUser reports of a stat (struct stat's fields that file APIs use). */
export interface FsStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  ino: number;
  nlink: number;
  mtimeSec: number;
  mtimeNsec: number;
}

/** One file entry: its lstat, a symlink's resolved target and the target's stat, and extended attributes. */
export interface FsEntry extends FsStat {
  /** Set in `list` results. */
  name?: string;
  /** Symlinks only: the resolved path ('' when it does not resolve). */
  target?: string;
  /** Symlinks only, when the target exists. */
  targetStat?: FsStat;
  /** [name, value] of the attributes whose names start with the request's prefix. */
  xattrs: [string, Buffer][];
}

/**
 * One file system call, made on a libuv pool thread that takes on uid/gid/groups as its file system
 * identity for the call (fsuid, fsgid, supplementary groups; then restored), so the kernel checks
 * the user's permissions on exactly the object it resolves. Without uid the caller's identity is used.
 */
export type FsAsUserRequest = { uid?: number; gid?: number; groups?: number[] } & (
  | { op: 'open'; path: string; flags: number; mode?: number; dirfd?: number; inRoot?: boolean }
  | { op: 'stat'; path: string; follow?: boolean }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'rename'; path: string; path2: string }
  | { op: 'removeTree'; path: string }
  | { op: 'readdir'; path: string }
  | { op: 'realpath'; path: string }
  | { op: 'entry'; path: string; prefix?: string }
  | { op: 'list'; path: string; prefix?: string }
  | { op: 'fdXattrs'; fd: number; prefix: string }
  | { op: 'fdSetXattrs'; fd: number; prefix: string; set: [string, string][] }
);

/** errno 0 on success; the fields of the request's op otherwise absent. */
export interface FsAsUserResult {
  errno: number;
  fd?: number;
  stat?: FsStat;
  path?: string;
  names?: string[];
  entry?: FsEntry;
  entries?: FsEntry[];
  xattrs?: [string, Buffer][];
}

/** One fd of a spawned child: a new pipe, /dev/null, or a dup of one of our fds. */
export type SpawnStdio = 'pipe' | 'ignore' | number;

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
