// Disk space a directory tree really occupies (allocated blocks, hard links counted once).
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export async function diskUsageBytes(root: string): Promise<number> {
  let rootStat: Stats;
  try {
    rootStat = await lstat(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const seen = new Set<bigint | number>();
  let total = 0;
  const visit = async (path: string): Promise<void> => {
    let st: Stats;
    try {
      st = await lstat(path);
    } catch {
      return; // removed while we walked (a running capsule)
    }
    if (st.dev !== rootStat.dev) return;
    if (st.nlink > 1 && !st.isDirectory()) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    total += st.blocks * 512;
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = await readdir(path);
      } catch {
        return;
      }
      for (let i = 0; i < names.length; i += 64) {
        await Promise.all(names.slice(i, i + 64).map((n) => visit(join(path, n))));
      }
    }
  };
  await visit(root);
  return total;
}
