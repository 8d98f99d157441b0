// The canonical id range template layers are stored in: uid/gid u inside a capsule is stored on
// disk as HOST_ID_BASE + u, shifted once at build time, so every capsule shares one copy of each
// layer. A namespace capsule does not run as these ids: it has a host range of its own
// (runtimes/namespace/id-ranges.ts) and sees the stored layers, and its own writable layer,
// through idmapped mounts that show HOST_ID_BASE + u as <its base> + u (see nsinit.c). What it
// writes is therefore stored canonically too, and snapshots need no shifting.

/** Host uid/gid that uid/gid 0 inside a capsule is stored as on disk. */
export const HOST_ID_BASE = 100_000;
/** How many ids are mapped (0..65535 inside). */
export const ID_RANGE = 65_536;

/** Contents for /proc/<pid>/uid_map and gid_map: ids 0.. inside are host ids base.. */
export function idMapLine(base: number = HOST_ID_BASE): string {
  return `0 ${base} ${ID_RANGE}`;
}

/** The idmapped-mount map that shows ids stored canonically as the capsule's own ids from base. */
export function layerIdMapLine(base: number): string {
  return `${HOST_ID_BASE} ${base} ${ID_RANGE}`;
}

/** The host id that id `inside` of a capsule is stored as. */
export function hostId(inside: number): number {
  if (!Number.isInteger(inside) || inside < 0 || inside >= ID_RANGE) {
    throw new RangeError(`id ${inside} is outside the capsule id range 0..${ID_RANGE - 1}`);
  }
  return HOST_ID_BASE + inside;
}
