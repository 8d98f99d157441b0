// Loop devices through losetup: attach a file (read-only for shared base images), detach, list
// with their backing files (to find ours again after an agent restart), size in sectors.
import { runTool, runToolOk } from './tool.js';

export interface LoopDevice {
  /** /dev/loopN */
  name: string;
  /** The backing file's path as the kernel recorded it (without a " (deleted)" suffix). */
  backFile: string;
  /** The backing file was deleted while attached. */
  deleted: boolean;
  /** Inode of the backing file (tells a rebuilt image from the one a device still holds). */
  backIno: number;
  readOnly: boolean;
}

/** `losetup --find --show [--read-only] -- <file>` as argv: attaches to the first free loop device. */
export function attachArgs(file: string, readOnly: boolean): string[] {
  return ['--find', '--show', ...(readOnly ? ['--read-only'] : []), '--', file];
}

export async function attachLoop(file: string, readOnly: boolean): Promise<string> {
  const out = await runToolOk('losetup', attachArgs(file, readOnly), `attaching ${file} to a loop device`);
  const dev = out.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed ${JSON.stringify(out)} instead of a loop device`);
  return dev;
}

/**
 * Detaches a loop device; one already gone counts as detached. The kernel defers the detach of a
 * device still open (autoclear) until its last user closes it.
 */
export async function detachLoop(dev: string): Promise<void> {
  const r = await runTool('losetup', ['--detach', dev]);
  if (r.code === 0) return;
  if (/No such device|No such file|ENXIO/i.test(r.stderr)) return;
  throw new Error(`detaching ${dev}: \`losetup --detach ${dev}\` failed (exit ${r.code}): ${r.stderr.trim()}`);
}

interface LosetupJson {
  loopdevices?: {
    name: string;
    'back-file'?: string | null;
    'back-ino'?: number | string | null;
    ro?: boolean | string;
  }[];
}

/** Every attached loop device with its backing file. */
export async function listLoops(): Promise<LoopDevice[]> {
  const out = await runToolOk(
    'losetup',
    ['--list', '--json', '--output', 'NAME,BACK-FILE,BACK-INO,RO'],
    'listing loop devices',
  );
  if (!out.trim()) return []; // no loop device at all prints nothing
  const parsed = JSON.parse(out) as LosetupJson;
  return (parsed.loopdevices ?? []).map((d) => {
    const raw = d['back-file'] ?? '';
    const deleted = raw.endsWith(' (deleted)');
    return {
      name: d.name,
      backFile: deleted ? raw.slice(0, -' (deleted)'.length) : raw,
      deleted,
      backIno: Number(d['back-ino'] ?? 0),
      readOnly: d.ro === true || d.ro === '1',
    };
  });
}

/** The device's size in 512-byte sectors (what a device-mapper table counts in). */
export async function sectorsOf(dev: string): Promise<number> {
  const out = await runToolOk('blockdev', ['--getsz', dev], `reading the size of ${dev}`);
  const n = Number(out.trim());
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`blockdev --getsz ${dev} printed ${JSON.stringify(out)}`);
  return n;
}
