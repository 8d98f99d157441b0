// Removes a directory tree that may hold mount points from a crashed build (debootstrap mounts
// /proc and /sys in its target): unmount everything below it first, then delete without ever
// crossing into another file system, so a forgotten bind mount of a host directory is never
// emptied.

import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

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
    await run('umount', ['-l', point]).catch((err: Error) => {
      throw new Error(`could not unmount ${point} (left over below ${dir}): ${err.message}`);
    });
  }
}

export async function removeTree(dir: string): Promise<void> {
  try {
    await access(dir);
  } catch {
    return;
  }
  await unmountUnder(dir);
  // GNU rm in C is much faster than a JS walk on large trees, and --one-file-system is the guard.
  await run('rm', ['-rf', '--one-file-system', '--', dir]).catch((err: Error) => {
    throw new Error(`could not remove ${dir}: ${err.message}`);
  });
}
