// Path resolution as E2B's envd does it: `~` and relative paths are the user's home, an empty path
// is the default workdir (or home); plus creating missing parent directories owned by the user.
import { chown, lstat, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { UserInfo } from '../users.js';
import { errnoCode } from './errors.js';

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
 * Creates `dir` and its missing parents (mode 0755), each chowned to uid/gid when envd is root.
 * Fails when a component exists but is not a directory.
 */
export async function ensureDirs(dir: string, uid: number, gid: number): Promise<void> {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    try {
      const st = await stat(cur);
      if (!st.isDirectory()) throw new PathError(`cannot create directory ${dir}: ${cur} is not a directory`);
      break;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      missing.push(cur);
      const parent = path.dirname(cur);
      if (parent === cur) break;
      cur = parent;
    }
  }
  const root = envdIsRoot();
  for (const d of missing.reverse()) {
    try {
      await mkdir(d, { mode: 0o755 });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    if (root) await chown(d, uid, gid);
  }
}

/** The nearest existing ancestor of p (p itself if it exists). */
export async function nearestExisting(p: string): Promise<string> {
  let cur = path.resolve(p);
  for (;;) {
    try {
      await lstat(cur);
      return cur;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
      const parent = path.dirname(cur);
      if (parent === cur) return cur;
      cur = parent;
    }
  }
}
