// Path resolution as E2B's envd does it: `~` and relative paths are the user's home, an empty path
// is the default workdir (or home); plus creating missing parent directories as the user.
import path from 'node:path';
import type { UserInfo } from '../users.js';
import { errnoCode } from './errors.js';
import type { UserFs } from './user-fs.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

export class PathError extends Error {}

export function resolvePath(requested: string, user: UserInfo, defaultWorkdir?: string): string {
  let p = requested === '' ? (defaultWorkdir ?? '') : requested;
  if (p.startsWith('~')) {
    if (p.length > 1 && p[1] !== '/') {
      throw new PathError(`cannot expand "${p}": only "~" and "~/..." (the requesting user's home) are supported`);
    }
    p = path.join(user.home, p.slice(1));
  }
  if (p.includes('\0')) throw new PathError('path must not contain NUL bytes');
  return path.isAbsolute(p) ? path.resolve(p) : path.resolve(user.home, p);
}

/** True when envd may hand files to other users (it runs as root). */
export function envdIsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Creates `dir` and its missing parents (mode 0755) as the user, so they are the user's and the
 * kernel decides whether it may. Fails when a component exists but is not a directory.
 */
export async function ensureDirs(dir: string, fs: UserFs): Promise<void> {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    try {
      const st = await fs.stat(cur);
      if ((st.mode & S_IFMT) !== S_IFDIR)
        throw new PathError(`cannot create directory ${dir}: ${cur} is not a directory`);
      break;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      missing.push(cur);
      const parent = path.dirname(cur);
      if (parent === cur) break;
      cur = parent;
    }
  }
  for (const d of missing.reverse()) {
    try {
      await fs.mkdir(d, 0o755);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
  }
}
