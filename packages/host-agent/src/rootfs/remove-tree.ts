// Removes a directory tree that may hold mount points from a crashed build (debootstrap mounts
// /proc and /sys in its target): unmount everything below it first, then delete without ever
// crossing into another file system, so a forgotten bind mount of a host directory is never
// emptied.

import { access, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { execFileNative, unmount } from '@wrenn/native';

// vfork spawns (a fork of the agent costs milliseconds); this runs on every capsule destroy.
const run = execFileNative;

/** Mount points (from /proc/self/mountinfo) at or below `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const base = resolve(dir);
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points = info
    .split('\n')
    .filter(Boolean)
    .map((line) => unescapeMountPath(line.split(' ')[4] ?? ''))
    .filter((p) => p === base || p.startsWith(`${base}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export async function unmountUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) {
    // umount2(MNT_DETACH) directly: umount(8) would parse the whole mount table again per point.
    await unmount(point, { lazy: true }).catch((err: Error & { errno?: number }) => {
      if (err.errno === 22) return; // EINVAL: no longer a mount point (a parent's detach took it)
      throw new Error(`could not unmount ${point} (left over below ${dir}): ${err.message}`);
    });
  }
}

/**
 * `mounts`: mount points the caller knows may be below `dir` (a capsule's disk). They are
 * unmounted without reading the mount table (which grows by two entries per capsule: at 1,000
 * capsules reading and parsing it cost more than the rest of a destroy); the table is read only
 * when the tree still holds another mount (rm --one-file-system then refuses to cross it).
 */
export async function removeTree(dir: string, opts: { mounts?: readonly string[] } = {}): Promise<void> {
  try {
    await access(dir);
  } catch {
    return;
  }
  if (opts.mounts) {
    for (const point of opts.mounts) {
      await unmount(point, { lazy: true }).catch((err: Error & { errno?: number }) => {
        if (err.errno !== 22 && err.errno !== 2) throw err; // EINVAL/ENOENT: not mounted (any more)
      });
    }
    if (
      await run('rm', ['-rf', '--one-file-system', '--', dir]).then(
        () => true,
        () => false,
      )
    )
      return;
  }
  await unmountUnder(dir);
  // GNU rm in C is much faster than a JS walk on large trees, and --one-file-system is the guard.
  await run('rm', ['-rf', '--one-file-system', '--', dir]).catch((err: Error) => {
    throw new Error(`could not remove ${dir}: ${err.message}`);
  });
}
