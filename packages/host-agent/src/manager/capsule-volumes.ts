// The volumes a capsule mounts, as the manager handles them: checked against the contract and the
// runtime at create, turned into host directories (mounted if needed) at every boot and resume, and
// asked about before a volume is deleted (a volume a capsule of this host still holds is in use).
import { volumeMountPathProblem } from '@wrenn/protocol';
import type { CapsuleRuntime } from '../runtimes/runtime.js';
import type { VolumeStore } from '../volumes/index.js';
import { FailedPreconditionError, InvalidArgumentError } from './errors.js';
import type { CapsuleRecord, CapsuleVolumeMount } from './types.js';

// A VM guest's init reads the mounts from the kernel command line, split at blanks and commas.
const VM_MOUNT_PATH_RE = /^[A-Za-z0-9._@+=/-]+$/;

/** Throws unless `runtime` can mount volumes and every path follows the contract. */
export function checkVolumeMounts(runtime: CapsuleRuntime, mounts: readonly CapsuleVolumeMount[]): void {
  if (mounts.length === 0) return;
  if (!runtime.volumeMounts)
    throw new InvalidArgumentError(
      `the ${runtime.name} runtime cannot mount volumes; create the capsule on the namespace or qemu runtime`,
    );
  for (const m of mounts) {
    const problem = volumeMountPathProblem(m.path, `volume ${m.volumeId} path`);
    if (problem) throw new InvalidArgumentError(problem);
    if ((runtime.volumeMounts === 'block' || runtime.volumeMounts === '9p') && !VM_MOUNT_PATH_RE.test(m.path))
      throw new InvalidArgumentError(
        `volume ${m.volumeId} path '${m.path}': on the ${runtime.name} runtime a mount path may hold only letters, digits and . _ @ + = / -`,
      );
  }
}

/**
 * What the runtime mounts for the capsule's volumes: host directories to bind (each mounted on
 * the host first), for a '9p' runtime the directories its 9p server exports, or for a 'block'
 * runtime each volume's image, attached to `capsuleId` alone.
 */
export async function volumeSources(
  store: VolumeStore,
  mounts: readonly CapsuleVolumeMount[] | undefined,
  how: { kind: CapsuleRuntime['volumeMounts']; capsuleId: string },
): Promise<{ source: string; path: string }[]> {
  const out: { source: string; path: string }[] = [];
  for (const m of mounts ?? []) {
    const source =
      how.kind === 'block'
        ? await store.attachToVm(m.volumeId, how.capsuleId)
        : how.kind === '9p'
          ? await store.exportForVm(m.volumeId)
          : await store.mountedData(m.volumeId);
    out.push({ source, path: m.path });
  }
  return out;
}

/**
 * Throws FailedPrecondition when a capsule of `records` other than `self` that is not stopped
 * mounts one of `mounts` and either side attaches volumes as block devices: a VM holds its
 * volumes alone, so it neither joins nor is joined by another capsule.
 */
export function assertVolumesFree(
  records: Iterable<CapsuleRecord>,
  self: { id: string; block: boolean },
  mounts: readonly CapsuleVolumeMount[] | undefined,
  isBlock: (rec: CapsuleRecord) => boolean,
): void {
  for (const m of mounts ?? []) {
    for (const rec of records) {
      if (rec.id === self.id || rec.state === 'stopped') continue;
      if (!rec.volumes?.some((v) => v.volumeId === m.volumeId)) continue;
      if (self.block || isBlock(rec))
        throw new FailedPreconditionError(
          `volume ${m.volumeId} is in use by capsule ${rec.id} (${rec.runtime}, ${rec.state}); ` +
            'a volume a Firecracker VM mounts is a disk that VM holds alone (one ext4 cannot be mounted by two kernels), ' +
            'so destroy the other capsule first, or share it between namespace and QEMU capsules',
        );
    }
  }
}

/** Throws FailedPrecondition when a capsule of `records` (in any state but stopped) mounts the volume. */
export function assertVolumeUnused(records: Iterable<CapsuleRecord>, volumeId: string): void {
  for (const rec of records) {
    if (rec.state !== 'stopped' && rec.volumes?.some((v) => v.volumeId === volumeId))
      throw new FailedPreconditionError(
        `volume ${volumeId} is mounted by capsule ${rec.id} (${rec.state}); destroy it first`,
      );
  }
}
