// The one host uid/gid range that root and every other id inside a namespace capsule map to.
//
// Trade-off (documented on purpose): every capsule uses the same range, so template layers can be
// shared read-only by all capsules with their ownership shifted once, at build time (uid u inside
// is stored as HOST_ID_BASE + u on disk). The cost: a process that escaped one capsule's
// namespaces would have the same host uid as the files of other capsules. It is never host root
// and owns nothing else on the host. Per-capsule ranges would need idmapped mounts of the layers
// (mount_setattr MOUNT_ATTR_IDMAP) instead of shifted copies: a later improvement.

/** Host uid/gid that uid/gid 0 inside a capsule maps to. */
export const HOST_ID_BASE = 100_000;
/** How many ids are mapped (0..65535 inside). */
export const ID_RANGE = 65_536;

/** Contents for /proc/<pid>/uid_map and gid_map. */
export function idMapLine(): string {
  return `0 ${HOST_ID_BASE} ${ID_RANGE}`;
}

/** The host id that id `inside` of a capsule is stored as. */
export function hostId(inside: number): number {
  if (!Number.isInteger(inside) || inside < 0 || inside >= ID_RANGE) {
    throw new RangeError(`id ${inside} is outside the capsule id range 0..${ID_RANGE - 1}`);
  }
  return HOST_ID_BASE + inside;
}
