// Shifts the ownership of a freshly built template tree into the capsule id range, so that root
// inside a capsule (host uid HOST_ID_BASE) owns what root owned at build time.
import { chmod, lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HOST_ID_BASE, ID_RANGE } from './id-map.js';

const SETID_BITS = 0o6000;

/**
 * Walks `root` without following symlinks or crossing into other file systems and adds
 * HOST_ID_BASE to every uid/gid below ID_RANGE. Ids already in the range are left alone, which
 * makes the shift idempotent and safe for hard links (seen twice, shifted once).
 */
export async function shiftOwnership(root: string): Promise<number> {
  const rootDev = (await lstat(root)).dev;
  let changed = 0;
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (st.dev !== rootDev) return;
    if (st.uid < ID_RANGE || st.gid < ID_RANGE) {
      const uid = st.uid < ID_RANGE ? st.uid + HOST_ID_BASE : st.uid;
      const gid = st.gid < ID_RANGE ? st.gid + HOST_ID_BASE : st.gid;
      await lchown(path, uid, gid);
      // chown clears setuid/setgid on files (sudo, passwd...): put them back.
      if (!st.isSymbolicLink() && !st.isDirectory() && (st.mode & SETID_BITS) !== 0)
        await chmod(path, st.mode & 0o7777);
      changed++;
    }
    if (st.isDirectory()) {
      const names = await readdir(path);
      // Bounded fan-out: enough parallelism to hide syscall latency, not thousands of handles.
      for (let i = 0; i < names.length; i += 64) {
        await Promise.all(names.slice(i, i + 64).map((n) => visit(join(path, n))));
      }
    }
  };
  await visit(root);
  return changed;
}
