// File system calls made AS the requesting user: envd runs as root, and checking a path in JS
// before acting on it as root can be raced (a symlink swapped in between; issue 14 item 7). Each
// call goes to @wrenn/native's fsAsUser, which runs it on a pool thread with the user's fsuid, fsgid
// and groups, so the kernel's own check applies to the object actually used; reads and writes then
// go through the fd it opened. Root requests, and an envd that is not root, keep envd's identity.
import { createRequire } from 'node:module';
import { getSystemErrorMap } from 'node:util';
import type { FsAsUserRequest, FsAsUserResult, FsEntry, FsStat } from '@wrenn/native';
import type { UserInfo } from '../users.js';
import { envdIsRoot } from './paths.js';

export type { FsEntry, FsStat };

type Binding = { fsAsUser(req: FsAsUserRequest): Promise<FsAsUserResult> };

let binding: Binding | undefined;
function addon(): Binding {
  if (!binding) {
    // In the bundle this resolves node_modules/@wrenn/native next to envd.cjs; in the repo, the workspace package.
    const b = createRequire(import.meta.url)('@wrenn/native/addon') as Partial<Binding>;
    if (typeof b.fsAsUser !== 'function') throw new Error('@wrenn/native has no fsAsUser (an older build): rebuild it');
    binding = b as Binding;
  }
  return binding;
}

/** A Node-style error (code, errno, syscall, path) for an errno from the addon. */
export function errnoError(errno: number, syscall: string, path: string): NodeJS.ErrnoException {
  const [code, description] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error'];
  const err: NodeJS.ErrnoException = new Error(`${code}: ${description}, ${syscall} '${path}'`);
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  err.path = path;
  return err;
}

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = 0o200000;
export const O_NOCTTY = 0o400;

/** The file system as one user sees it (envd's own identity when `identity` is undefined). */
export class UserFs {
  constructor(readonly identity?: { uid: number; gid: number; groups: number[] }) {}

  private async call(req: FsAsUserRequest, syscall: string, shown: string): Promise<FsAsUserResult> {
    const r = await addon().fsAsUser(this.identity ? { ...req, ...this.identity } : req);
    if (r.errno !== 0) throw errnoError(r.errno, syscall, shown);
    return r;
  }

  /** An fd the caller must close (fs.close, or a stream with autoClose). */
  async open(path: string, flags: number, mode = 0o666): Promise<number> {
    return (await this.call({ op: 'open', path, flags, mode }, 'open', path)).fd as number;
  }

  async stat(path: string, follow = true): Promise<FsStat> {
    return (await this.call({ op: 'stat', path, follow }, follow ? 'stat' : 'lstat', path)).stat as FsStat;
  }

  async mkdir(path: string, mode = 0o755): Promise<void> {
    await this.call({ op: 'mkdir', path, mode }, 'mkdir', path);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.call({ op: 'rename', path: from, path2: to }, 'rename', `${from}' -> '${to}`);
  }

  /** rm -rf: a missing path is no error; stops at the first entry the user may not remove. */
  async removeTree(path: string): Promise<void> {
    await this.call({ op: 'removeTree', path }, 'rm', path);
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.call({ op: 'readdir', path }, 'scandir', path)).names as string[];
  }

  async realpath(path: string): Promise<string> {
    return (await this.call({ op: 'realpath', path }, 'realpath', path)).path as string;
  }

  /** lstat, symlink target and the attributes under `prefix` of one path. */
  async entry(path: string, prefix: string): Promise<FsEntry> {
    return (await this.call({ op: 'entry', path, prefix }, 'lstat', path)).entry as FsEntry;
  }

  /** entry() of every name in the directory (entries that vanish meanwhile are left out). */
  async list(path: string, prefix: string): Promise<FsEntry[]> {
    return (await this.call({ op: 'list', path, prefix }, 'scandir', path)).entries as FsEntry[];
  }

  async fdXattrs(fd: number, prefix: string, shown: string): Promise<[string, Buffer][]> {
    return (await this.call({ op: 'fdXattrs', fd, prefix }, 'flistxattr', shown)).xattrs as [string, Buffer][];
  }

  /** Replaces the attributes under `prefix` with exactly `set`; returns them as read back. */
  async fdSetXattrs(fd: number, prefix: string, set: [string, string][], shown: string): Promise<[string, Buffer][]> {
    return (await this.call({ op: 'fdSetXattrs', fd, prefix, set }, 'fsetxattr', shown)).xattrs as [string, Buffer][];
  }
}

const asEnvd = new UserFs();

/** The user's view: its identity when envd is root and the user is not. */
export function userFs(user: UserInfo): UserFs {
  if (user.uid === 0 || !envdIsRoot()) return asEnvd;
  return new UserFs({ uid: user.uid, gid: user.gid, groups: user.groups });
}
