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
  checkedAt: number;
  rows: string[][];
}

// Parsed passwd/group files, reused while the file is unchanged: every process start looks up
// its user, and re-reading /etc/passwd each time would cost more than the spawn itself. The file
// is stat'ed at most once per REVALIDATE_MS; a name or id that is not found re-checks at once,
// so a user added a moment ago (useradd, then run) is always seen.
const REVALIDATE_MS = 1000;
const parsedTables = new Map<string, ParsedTable>();

function readLines(path: string, fresh = false): string[][] {
  const hit = parsedTables.get(path);
  const now = Date.now();
  if (hit && !fresh && now - hit.checkedAt < REVALIDATE_MS) return hit.rows;
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) {
      parsedTables.delete(path);
      return [];
    }
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size && hit.ino === st.ino) {
      hit.checkedAt = now;
      return hit.rows;
    }
    const rows = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
    parsedTables.set(path, { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, checkedAt: now, rows });
    return rows;
  } catch {
    return [];
  }
}

// Resolved users, valid while the parsed tables they came from are the current ones.
const resolvedUsers = new Map<string, { passwd: string[][]; group: string[][]; info: UserInfo }>();

export function lookupUser(name: string, etc = '/etc'): UserInfo {
  const key = `${etc}\0${name}`;
  const passwd = readLines(`${etc}/passwd`);
  const group = readLines(`${etc}/group`);
  const memo = resolvedUsers.get(key);
  if (memo && memo.passwd === passwd && memo.group === group) return memo.info;
  let info = resolveUser(name, passwd, group);
  if (!info) info = resolveUser(name, readLines(`${etc}/passwd`, true), readLines(`${etc}/group`, true));
  if (!info) {
    if (name === 'root') return { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [0] };
    throw new UnknownUserError(`user "${name}" does not exist in this capsule`);
  }
  if (resolvedUsers.size > 256) resolvedUsers.clear();
  resolvedUsers.set(key, { passwd: readLines(`${etc}/passwd`), group: readLines(`${etc}/group`), info });
  return info;
}

function resolveUser(name: string, passwd: string[][], group: string[][]): UserInfo | undefined {
  const row = passwd.find((f) => f[0] === name) ?? (/^\d+$/.test(name) ? passwd.find((f) => f[2] === name) : undefined);
  if (!row) return undefined;
  const [uname = name, , uid = '0', gid = '0', , home = '/', shell = '/bin/sh'] = row;
  const groups = new Set<number>([Number(gid)]);
  for (const g of group) {
    const members = (g[3] ?? '').split(',');
    if (members.includes(uname) && g[2] !== undefined) groups.add(Number(g[2]));
  }
  return Object.freeze({
    name: uname,
    uid: Number(uid),
    gid: Number(gid),
    home: home || '/',
    shell: shell || '/bin/sh',
    groups: Object.freeze([...groups]) as number[],
  });
}

/** Name of a uid / gid for file entries ("owner", "group"); falls back to the number. */
export function nameOfUid(uid: number, etc = '/etc'): string {
  const id = String(uid);
  const find = (rows: string[][]) => rows.find((f) => f[2] === id)?.[0];
  return find(readLines(`${etc}/passwd`)) ?? find(readLines(`${etc}/passwd`, true)) ?? id;
}
export function nameOfGid(gid: number, etc = '/etc'): string {
  const id = String(gid);
  const find = (rows: string[][]) => rows.find((f) => f[2] === id)?.[0];
  return find(readLines(`${etc}/group`)) ?? find(readLines(`${etc}/group`, true)) ?? id;
}
