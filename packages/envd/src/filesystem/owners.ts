// uid/gid -> name for file entries ("owner", "group"). The passwd and group files are parsed once
// and re-read only when their mtime changes, so listing a large directory costs no extra file reads.
import { readFileSync, statSync } from 'node:fs';

interface NameTable {
  mtimeMs: number;
  names: Map<number, string>;
}

const tables = new Map<string, NameTable>();

const RECHECK_MS = 1000;
const checkedAt = new Map<string, number>();

function table(file: string, force = false): Map<number, string> {
  const cached0 = tables.get(file);
  const now = Date.now();
  // Listing a big directory asks for thousands of names: look at the file's mtime at most once a
  // second, or when a request starts (refreshOwnerNames).
  if (!force && cached0 && now - (checkedAt.get(file) ?? 0) < RECHECK_MS) return cached0.names;
  checkedAt.set(file, now);
  let mtimeMs = -1;
  try {
    mtimeMs = statSync(file).mtimeMs;
  } catch {
    // A missing file means only numeric names.
  }
  const cached = tables.get(file);
  if (cached && cached.mtimeMs === mtimeMs) return cached.names;
  const names = new Map<number, string>();
  if (mtimeMs >= 0) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const f = line.split(':');
      const id = Number(f[2]);
      if (f[0] && Number.isInteger(id) && !names.has(id)) names.set(id, f[0]);
    }
  }
  tables.set(file, { mtimeMs, names });
  return names;
}

/** Owner name of a uid in the capsule, or the number as text (as E2B's envd does). */
export function ownerName(uid: number, etcDir: string): string {
  return table(`${etcDir}/passwd`).get(uid) ?? (uid === 0 ? 'root' : String(uid));
}

export function groupName(gid: number, etcDir: string): string {
  return table(`${etcDir}/group`).get(gid) ?? (gid === 0 ? 'root' : String(gid));
}

/** Re-reads passwd/group if they changed; called once per request so new users show at once. */
export function refreshOwnerNames(etcDir: string): void {
  table(`${etcDir}/passwd`, true);
  table(`${etcDir}/group`, true);
}
