// The volumes a capsule mounts, as the manager handles them: checked against the contract and the
// runtime at create, turned into host directories (mounted if needed) at every boot and resume, and
// asked about before a volume is deleted (a volume a capsule of this host still holds is in use).
import { volumeMountPathProblem } from '@wrenn/protocol';
import type { CapsuleRuntime } from '../runtimes/runtime.js';
import type { VolumeStore } from '../volumes/index.js';
import { FailedPreconditionError, InvalidArgumentError } from './errors.js';
import type { CapsuleRecord, CapsuleVolumeMount } from './types.js';

/** Throws unless `runtime` can mount volumes and every path follows the contract. */
export function checkVolumeMounts(runtime: CapsuleRuntime, mounts: readonly CapsuleVolumeMount[]): void {
  if (mounts.length === 0) return;
  if (!runtime.volumeMounts)
    throw new InvalidArgumentError(
      `the ${runtime.name} runtime cannot mount volumes yet; create the capsule on the namespace runtime`,
    );
  for (const m of mounts) {
    const problem = volumeMountPathProblem(m.path, `volume ${m.volumeId} path`);
    if (problem) throw new InvalidArgumentError(problem);
  }
}

/** Host directories to bind for the capsule's volumes (each mounted on the host first). */
export async function volumeSources(
  store: VolumeStore,
  mounts: readonly CapsuleVolumeMount[] | undefined,
): Promise<{ source: string; path: string }[]> {
  const out: { source: string; path: string }[] = [];
  for (const m of mounts ?? []) out.push({ source: await store.mountedData(m.volumeId), path: m.path });
  return out;
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
