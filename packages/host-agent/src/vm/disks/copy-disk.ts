// Disks without device-mapper: a per-capsule copy of the base image that shares its blocks
// (reflink) where the file system can, else a sparse copy (holes stay holes). Also the flattening
// of any disk (file or block device) into a sparse file, for snapshot templates.
import { chmod, stat } from 'node:fs/promises';
import { runToolOk } from './tool.js';

export type CopyKind = 'reflink' | 'sparse-copy';

/** The cp arguments for each kind (reflink cannot be combined with --sparse=always). */
export function copyArgs(kind: CopyKind, src: string, dst: string): string[] {
  return kind === 'reflink' ? ['--reflink=always', '--', src, dst] : ['--sparse=always', '--', src, dst];
}

export async function copyDisk(kind: CopyKind, src: string, dst: string): Promise<void> {
  await runToolOk('cp', copyArgs(kind, src, dst), `making the ${kind} disk ${dst} from ${src}`);
}

/**
 * Copies a disk's content into a sparse file: a block device (a device-mapper snapshot) is read
 * whole with zero blocks left as holes; a file is copied sharing blocks where possible.
 */
export async function flattenDisk(src: string, dst: string): Promise<void> {
  const st = await stat(src).catch(() => {
    throw new Error(`the disk ${src} to copy does not exist`);
  });
  const args = st.isBlockDevice()
    ? ['--sparse=always', '--', src, dst]
    : ['--reflink=auto', '--sparse=always', '--', src, dst];
  await runToolOk('cp', args, `copying the disk ${src} to ${dst}`);
  if (st.isBlockDevice()) await chmod(dst, 0o644); // cp gives the device node's mode
}
