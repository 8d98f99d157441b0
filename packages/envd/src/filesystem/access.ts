// Permission checks for a non-root requesting user while envd itself runs as root: envd does the
// work with root's rights, so it must refuse what the user could not do (e.g. write into /root).
// When envd is not root the kernel enforces this itself and these checks are skipped.

import type { Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import type { UserInfo } from '../users.js';
import { envdIsRoot, nearestExisting } from './paths.js';

export const R = 4;
export const W = 2;
export const X = 1;

export function allows(st: Stats, user: UserInfo, want: number): boolean {
  if (user.uid === 0) return true;
  const mode = st.mode;
  const bits = st.uid === user.uid ? (mode >> 6) & 7 : user.groups.includes(st.gid) ? (mode >> 3) & 7 : mode & 7;
  return (bits & want) === want;
}

function needsCheck(user: UserInfo): boolean {
  return envdIsRoot() && user.uid !== 0;
}

function denied(user: UserInfo, what: string): ConnectError {
  return new ConnectError(`permission denied: user "${user.name}" may not ${what}`, Code.PermissionDenied);
}

/** Every directory from / down to dir must be searchable by the user. */
async function checkSearch(dir: string, user: UserInfo, what: string): Promise<void> {
  const parts = path.resolve(dir).split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i <= parts.length; i++) {
    const st = await stat(cur);
    if (st.isDirectory() && !allows(st, user, X)) throw denied(user, `${what} (no search permission on ${cur})`);
    if (i < parts.length) cur = path.join(cur, parts[i] as string);
  }
}

/** The user may create (or replace) the entry at p: write+search on the nearest existing ancestor dir. */
export async function checkCreate(p: string, user: UserInfo, what: string): Promise<void> {
  if (!needsCheck(user)) return;
  const anchor = await nearestExisting(path.dirname(p));
  await checkSearch(anchor, user, what);
  const st = await stat(anchor);
  if (!allows(st, user, W | X)) throw denied(user, `${what} (no write permission on ${anchor})`);
}

/** The user may delete or move away the entry at p (write on its directory; sticky bit honoured). */
export async function checkUnlink(p: string, user: UserInfo, what: string): Promise<void> {
  if (!needsCheck(user)) return;
  const dir = path.dirname(p);
  await checkSearch(dir, user, what);
  const st = await stat(dir);
  if (!allows(st, user, W | X)) throw denied(user, `${what} (no write permission on ${dir})`);
  if (st.mode & 0o1000) {
    const own = await stat(p).catch(() => undefined);
    if (own && own.uid !== user.uid && st.uid !== user.uid) throw denied(user, `${what} (sticky directory ${dir})`);
  }
}

/** The user may read (R) or overwrite (W) the existing file p. */
export async function checkFile(p: string, st: Stats, user: UserInfo, want: number, what: string): Promise<void> {
  if (!needsCheck(user)) return;
  await checkSearch(path.dirname(p), user, what);
  if (!allows(st, user, want)) throw denied(user, what);
}

/** Removing a whole tree as the user needs write+search on every non-empty directory inside it too. */
export async function checkRemoveTree(p: string, user: UserInfo, what: string): Promise<void> {
  if (!needsCheck(user)) return;
  await checkUnlink(p, user, what);
  const walk = async (dir: string): Promise<void> => {
    const st = await lstat(dir);
    if (!st.isDirectory()) return;
    const names = await readdir(dir);
    if (names.length === 0) return;
    if (!allows(st, user, W | X)) throw denied(user, `${what} (no write permission on ${dir})`);
    for (const name of names) await walk(path.join(dir, name));
  };
  await walk(p);
}
