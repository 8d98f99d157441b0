// At agent start: what namespace capsules the manager no longer knows left behind (a crash, a
// lost record): their processes and cgroups, sandbox dirs, host id ranges and, from older agents,
// mounts under the sandboxes dir. Every step is tried; what failed is reported together.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mountsUnder, removeTree, unmountUnder } from '../../rootfs/remove-tree.js';
import { type CapsuleCgroups, listCapsuleCgroupIds } from './cgroups.js';
import type { IdRangeStore } from './id-ranges.js';

export interface StaleSweep {
  sandboxesDir: string;
  cgroupRoot?: string;
  cgroupParent?: string;
  cgroups: (id: string) => CapsuleCgroups;
  idRanges: IdRangeStore;
}

/** Kills, unmounts and removes every capsule of ours (cgroups, sandbox dirs) not in knownIds. */
export async function cleanupStaleCapsules(o: StaleSweep, knownIds: ReadonlySet<string>): Promise<void> {
  const errors: string[] = [];
  for (const id of listCapsuleCgroupIds(o.cgroupRoot, o.cgroupParent)) {
    if (knownIds.has(id)) continue;
    const cg = o.cgroups(id);
    await cg
      .killAll()
      .then(() => cg.remove())
      .catch((err: Error) => errors.push(err.message));
  }
  const dirs = await readdir(o.sandboxesDir).catch(() => [] as string[]);
  for (const id of dirs) {
    if (knownIds.has(id)) continue;
    await removeTree(join(o.sandboxesDir, id)).catch((err: Error) => errors.push(err.message));
  }
  await o.idRanges.releaseUnknown(knownIds).catch((err: Error) => errors.push(err.message));
  // Capsule mounts are private to the capsule, but a crash of an older agent may have left some.
  for (const point of await mountsUnder(o.sandboxesDir)) {
    const id = point.slice(o.sandboxesDir.length + 1).split('/')[0] ?? '';
    if (!knownIds.has(id)) await unmountUnder(point).catch((err: Error) => errors.push(err.message));
  }
  if (errors.length) throw new Error(`cleanup of stale capsules was incomplete:\n${errors.join('\n')}`);
}
