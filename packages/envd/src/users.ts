// Resolves user names to uid/gid/home/groups from the capsule's own /etc/passwd and /etc/group
// (envd runs inside the capsule's root filesystem, so these are the capsule's users).
import { readFileSync, statSync } from 'node:fs';

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  groups: number[];
}

export class UnknownUserError extends Error {}

interface ParsedTable {
  mtimeMs: number;
  size: number;
  ino: number;
  rows: string[][];
}

// Parsed passwd/group files, reused while the file is unchanged: every process start looks up
// its user, and re-reading /etc/passwd each time would cost more than the spawn itself.
const parsedTables = new Map<string, ParsedTable>();

function readLines(path: string): string[][] {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) {
      parsedTables.delete(path);
      return [];
    }
    const hit = parsedTables.get(path);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size && hit.ino === st.ino) return hit.rows;
    const rows = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
    parsedTables.set(path, { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, rows });
    return rows;
  } catch {
    return [];
  }
}

export function lookupUser(name: string, etc = '/etc'): UserInfo {
  const byName = readLines(`${etc}/passwd`).find((f) => f[0] === name);
  const byUid = /^\d+$/.test(name) ? readLines(`${etc}/passwd`).find((f) => f[2] === name) : undefined;
  const row = byName ?? byUid;
  if (!row) {
    if (name === 'root') return { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [0] };
    throw new UnknownUserError(`user "${name}" does not exist in this capsule`);
  }
  const [uname = name, , uid = '0', gid = '0', , home = '/', shell = '/bin/sh'] = row;
  const groups = new Set<number>([Number(gid)]);
  for (const g of readLines(`${etc}/group`)) {
    const members = (g[3] ?? '').split(',');
    if (members.includes(uname) && g[2] !== undefined) groups.add(Number(g[2]));
  }
  return { name: uname, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh', groups: [...groups] };
}

/** Name of a uid / gid for file entries ("owner", "group"); falls back to the number. */
export function nameOfUid(uid: number, etc = '/etc'): string {
  return readLines(`${etc}/passwd`).find((f) => f[2] === String(uid))?.[0] ?? String(uid);
}
export function nameOfGid(gid: number, etc = '/etc'): string {
  return readLines(`${etc}/group`).find((f) => f[2] === String(gid))?.[0] ?? String(gid);
}
