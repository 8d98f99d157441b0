// The capsule's root file system on the host side: the mount point of its root and the overlay's
// writable layer (upper + work), on the capsule's own quota disk (quota-disk.ts) or, with no disk
// size set, as plain directories in its sandbox dir. The template layers under them are read-only.
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_ID_BASE } from '../../rootfs/id-map.js';
import type { NamespaceState } from './namespace-runtime.js';
import { QuotaDisks } from './quota-disk.js';

/** Overlay upper and work dirs of a capsule. */
export function layerDirs(s: Pick<NamespaceState, 'ownDisk' | 'sandboxDir'>): { upper: string; work: string } {
  return s.ownDisk
    ? QuotaDisks.dirs(s.sandboxDir)
    : { upper: join(s.sandboxDir, 'upper'), work: join(s.sandboxDir, 'work') };
}

/** The root's mount point and the writable layer: on the capsule's own disk, or in the sandbox dir. */
export async function makeLayerDirs(state: NamespaceState, disks: QuotaDisks | undefined): Promise<void> {
  mkdirSync(join(state.sandboxDir, 'rootfs'));
  if (disks) {
    await disks.attach(state.sandboxDir);
    return;
  }
  const { upper, work } = layerDirs(state);
  for (const d of [upper, work]) {
    mkdirSync(d);
    // The upper dir's root is the merged "/": it must belong to root inside the capsule. Both
    // are seen through an idmapped mount that hides ids outside the capsule's range.
    chownSync(d, HOST_ID_BASE, HOST_ID_BASE);
  }
  chmodSync(upper, 0o755);
}
