// Moves a volume's file ownership between the two id schemes it is used under: the canonical
// range (HOST_ID_BASE + u), which namespace capsules see as their own ids through idmapped binds,
// and plain guest ids (u), which a VM's kernel sees on the raw block device. Each file is mapped
// on its own and the mapping is idempotent (ids already in the target scheme stay), so a shift
// cut short by a crash is finished by running it again.
import { lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HOST_ID_BASE, ID_RANGE } from '../rootfs/id-map.js';

export type OwnerScheme = 'canonical' | 'guest';

function shifted(id: number, to: OwnerScheme): number {
  if (to === 'guest') return id >= HOST_ID_BASE && id < HOST_ID_BASE + ID_RANGE ? id - HOST_ID_BASE : id;
  return id < ID_RANGE ? id + HOST_ID_BASE : id;
}

/** Re-owns `dir` and everything below it (links themselves, not their targets) into `to`; returns the count. */
export async function shiftOwners(dir: string, to: OwnerScheme): Promise<number> {
  let count = 0;
  const visit = async (path: string, isDir: boolean): Promise<void> => {
    const st = await lstat(path);
    const uid = shifted(st.uid, to);
    const gid = shifted(st.gid, to);
    if (uid !== st.uid || gid !== st.gid) await lchown(path, uid, gid);
    count++;
    if (!isDir) return;
    for (const e of await readdir(path, { withFileTypes: true })) await visit(join(path, e.name), e.isDirectory());
  };
  await visit(dir, true);
  return count;
}
