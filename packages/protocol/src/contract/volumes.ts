// The volume contract: what a volume name, size and mount path may be, and the rules every process
// checks them with (the APIs, the agent, the SDK and the CLI). A volume is persistent storage of a
// team with a size limit of its own, mounted into capsules at create.

/** Bounds and defaults of a volume. */
export const VOLUME_LIMITS = {
  /** Smallest volume: ext4 needs a few MiB for its journal and tables. */
  minSizeMb: 16,
  maxSizeMb: 1024 * 1024,
  /** A volume created without a size (E2B's API has none). */
  defaultSizeMb: 1024,
  maxNameLength: 63,
  /** Volumes one capsule may mount. */
  maxMountsPerCapsule: 8,
  maxMountPathLength: 255,
  /** One file written through the content API in one request. */
  maxContentWriteBytes: 256 * 1024 * 1024,
  /** Entries one content API listing returns. */
  maxListEntries: 10_000,
  /** Deepest listing of the content API. */
  maxListDepth: 16,
} as const;

/** The operations of the volume content API (native and E2B routes, the agent's VolumeContent RPC). */
export const VOLUME_CONTENT_OPS = ['stat', 'list', 'mkdir', 'read', 'write', 'remove', 'chmod'] as const;
export type VolumeContentOpName = (typeof VOLUME_CONTENT_OPS)[number];
export const isVolumeContentOp = (op: unknown): op is VolumeContentOpName =>
  (VOLUME_CONTENT_OPS as readonly unknown[]).includes(op);

/** One content operation, as the control plane asks it and the agent runs it (ids as capsules see them). */
export interface VolumeContentOp {
  op: VolumeContentOpName;
  /** From the volume's root. */
  path: string;
  /** list: how deep (VOLUME_LIMITS.maxListDepth at most). */
  depth?: number;
  uid?: number;
  gid?: number;
  mode?: number;
  /** mkdir: make missing parents (and no error when it exists); write: make missing parents. */
  force?: boolean;
  data?: Uint8Array;
}

/** A volume name: letters, digits, '-', '_' and '.', starting with a letter or digit. */
export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function volumeNameProblem(name: unknown, field = 'name'): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return `${field} must be a non-empty string`;
  if (name.length > VOLUME_LIMITS.maxNameLength)
    return `${field} is ${name.length} characters; at most ${VOLUME_LIMITS.maxNameLength}`;
  if (!VOLUME_NAME_RE.test(name))
    return `${field} '${name}' may hold only letters, digits, '-', '_' and '.', and must start with a letter or digit`;
  return undefined;
}

export function volumeSizeProblem(sizeMb: unknown, field = 'size_mb'): string | undefined {
  if (sizeMb === undefined) return undefined;
  if (
    typeof sizeMb !== 'number' ||
    !Number.isInteger(sizeMb) ||
    sizeMb < VOLUME_LIMITS.minSizeMb ||
    sizeMb > VOLUME_LIMITS.maxSizeMb
  )
    return `${field} must be a whole number from ${VOLUME_LIMITS.minSizeMb} to ${VOLUME_LIMITS.maxSizeMb}, got ${String(sizeMb)}`;
  return undefined;
}

/**
 * Places inside a capsule a volume may not cover: the runtime's own mounts (/proc, /sys, /dev,
 * /opt/wrenn: envd and node) and /etc (hosts, hostname and resolv.conf are bound there).
 */
const RESERVED_MOUNT_ROOTS = ['/proc', '/sys', '/dev', '/opt/wrenn', '/etc', '/run/wrenn'];

/** An absolute, normalised path of ordinary characters that covers none of the runtime's mounts. */
export function volumeMountPathProblem(path: unknown, field = 'path'): string | undefined {
  if (typeof path !== 'string' || !path.startsWith('/')) return `${field} must be an absolute path`;
  if (path.length > VOLUME_LIMITS.maxMountPathLength)
    return `${field} is ${path.length} characters; at most ${VOLUME_LIMITS.maxMountPathLength}`;
  if (path === '/') return `${field} cannot be / (mount the volume on a directory below it)`;
  // No control characters, no ':' (the runtime's bind lists use it), no '\\'.
  if (/[\0-\x1f\x7f:\\]/.test(path)) return `${field} '${path}' holds a control character, ':' or '\\'`;
  const parts = path.slice(1).split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..'))
    return `${field} '${path}' must be normalised: no empty, '.' or '..' components, no trailing '/'`;
  for (const root of RESERVED_MOUNT_ROOTS) {
    if (path === root || path.startsWith(`${root}/`) || root.startsWith(`${path}/`))
      return `${field} '${path}' would cover or sit inside ${root}, which the runtime owns`;
  }
  return undefined;
}

/** A capsule's volume mounts: each path valid, no two on the same or nested paths. */
export function volumeMountsProblem(
  mounts: readonly { name: string; path: string }[] | undefined,
  field = 'volume_mounts',
): string | undefined {
  if (!mounts) return undefined;
  if (mounts.length > VOLUME_LIMITS.maxMountsPerCapsule)
    return `${field} has ${mounts.length} entries; at most ${VOLUME_LIMITS.maxMountsPerCapsule}`;
  for (const [i, m] of mounts.entries()) {
    const p = volumeNameProblem(m.name, `${field}[${i}].name`) ?? volumeMountPathProblem(m.path, `${field}[${i}].path`);
    if (p) return p;
    for (const other of mounts.slice(0, i)) {
      if (other.path === m.path || other.path.startsWith(`${m.path}/`) || m.path.startsWith(`${other.path}/`))
        return `${field}: ${other.path} and ${m.path} overlap; give each volume a path of its own`;
    }
  }
  return undefined;
}

/**
 * A path of the content API, relative to the volume's root ('/' and '' are the root). Returns the
 * components, or a problem: '..' is refused outright rather than clamped, so a caller never gets
 * a different file than the one named.
 */
export function volumeContentPath(path: unknown): { parts: string[] } | { problem: string } {
  if (typeof path !== 'string') return { problem: 'path must be a string' };
  if (path.length > 4096) return { problem: 'path is longer than 4096 characters' };
  if (path.includes('\0')) return { problem: 'path holds a NUL byte' };
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { problem: `path '${path}' holds '..'; name paths from the volume's root` };
  if (parts.some((p) => new TextEncoder().encode(p).length > 255))
    return { problem: 'a path component is longer than 255 bytes' };
  return { parts };
}
