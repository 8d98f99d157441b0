// The device-mapper snapshot of one capsule's disk: reads come from the shared read-only base
// loop device, writes go to the capsule's CoW loop device (Documentation/admin-guide/device-mapper/
// snapshot.rst: `snapshot <origin> <COW device> <persistent?> <chunksize>`). The tables and
// command lines are built by pure functions so they can be checked as data on hosts without
// device-mapper; the functions that run them use exactly these.
import { runTool } from './tool.js';

/** 8 sectors = 4 KiB chunks: the guest's ext4 block size, so one guest write copies one chunk. */
export const CHUNK_SECTORS = 8;
const SECTOR = 512;

export const dmName = (id: string) => `wrenn-${id}`;
export const dmPath = (id: string) => `/dev/mapper/${dmName(id)}`;

/**
 * The dm table: the whole origin (`sectors` long) as a persistent (P: the exceptions are stored
 * on the CoW device, so the snapshot survives a remove and re-create) snapshot.
 */
export function snapshotTable(o: {
  sectors: number;
  baseLoop: string;
  cowLoop: string;
  chunkSectors?: number;
}): string {
  const chunk = o.chunkSectors ?? CHUNK_SECTORS;
  if (!Number.isSafeInteger(o.sectors) || o.sectors <= 0)
    throw new Error(`the origin's size must be a positive number of sectors, got ${o.sectors}`);
  if (!Number.isInteger(chunk) || chunk < 8 || (chunk & (chunk - 1)) !== 0)
    throw new Error(`the chunk size must be a power of two of at least 8 sectors (one page), got ${chunk}`);
  for (const dev of [o.baseLoop, o.cowLoop])
    if (!/^\/dev\/\S+$/.test(dev)) throw new Error(`not a device path: ${JSON.stringify(dev)}`);
  return `0 ${o.sectors} snapshot ${o.baseLoop} ${o.cowLoop} P ${chunk}`;
}

/**
 * Bytes the CoW file needs so the guest can rewrite its whole disk: the persistent store's header
 * chunk, then per 16-byte exception one data chunk, with one metadata chunk per `chunk/16` of them.
 * Plus `extraBytes` when configured. The file is sparse: only chunks written take space.
 */
export function cowBytes(baseBytes: number, extraBytes = 0, chunkSectors = CHUNK_SECTORS): number {
  if (!Number.isSafeInteger(baseBytes) || baseBytes <= 0 || baseBytes % SECTOR !== 0)
    throw new Error(`the base image size must be a positive multiple of 512 bytes, got ${baseBytes}`);
  if (!Number.isSafeInteger(extraBytes) || extraBytes < 0)
    throw new Error(`extraBytes must be >= 0, got ${extraBytes}`);
  const chunk = chunkSectors * SECTOR;
  const dataChunks = Math.ceil(baseBytes / chunk);
  const metadataChunks = Math.ceil(dataChunks / (chunk / 16));
  const total = (1 + metadataChunks + dataChunks) * chunk + extraBytes;
  return Math.ceil(total / SECTOR) * SECTOR;
}

/**
 * `dmsetup create` with the table, then `mknodes`: udev may be absent (containers), so dmsetup
 * does not wait for it and makes /dev/mapper/<name> itself. The uuid carries the agent's tag so
 * stale cleanup only ever touches devices of this data directory.
 */
export function dmCreateCommands(o: { id: string; table: string; tag: string }): string[][] {
  const name = dmName(o.id);
  return [
    ['dmsetup', 'create', name, '--uuid', dmUuid(o.id, o.tag), '--noudevsync', '--table', o.table],
    ['dmsetup', 'mknodes', name],
  ];
}

export const dmUuid = (id: string, tag: string) => `WRENN-${tag}-${id}`;

export function dmRemoveCommand(id: string): string[] {
  return ['dmsetup', 'remove', '--noudevsync', dmName(id)];
}

/** The whole removal, in order: the snapshot device, then its CoW loop; the base is released after. */
export function dmRemovalOrder(o: { id: string; cowLoop: string }): string[][] {
  return [dmRemoveCommand(o.id), ['losetup', '--detach', o.cowLoop]];
}

export type DmsetupFailure = 'no-device-mapper' | 'not-found' | 'busy' | 'other';

/** What a failed dmsetup said, from its own messages (checked in that order). */
export function classifyDmsetupError(text: string): DmsetupFailure {
  if (/mapper\/control|kernel device-mapper driver|driver \(unknown version\)/i.test(text)) return 'no-device-mapper';
  if (/busy/i.test(text)) return 'busy';
  if (/not found|No such device or address|does not exist/i.test(text)) return 'not-found';
  return 'other';
}

/** Runs the create commands; a failing one names the device and what dmsetup said. */
export async function createSnapshotDevice(o: { id: string; table: string; tag: string }): Promise<string> {
  let created = false;
  for (const [cmd, ...args] of dmCreateCommands(o)) {
    const r = await runTool(cmd as string, args);
    if (r.code === 0) created = true;
    else {
      // A device made by an earlier step goes again: the caller then detaches the loop devices under it.
      if (created) await removeSnapshotDevice(o.id, { attempts: 5 }).catch(() => {});
      const said = r.stderr.trim() || r.stdout.trim();
      const noDm = classifyDmsetupError(said) === 'no-device-mapper';
      throw new Error(
        noDm
          ? `device-mapper is not available in this kernel, so the snapshot device ${dmName(o.id)} cannot be created (\`${cmd} ${args.join(' ')}\`: ${said.split('\n')[0]}); load dm-snapshot (modprobe dm-snapshot) or let the agent use reflink/sparse copies`
          : `creating the snapshot device ${dmName(o.id)}: \`${cmd} ${args.join(' ')}\` failed (exit ${r.code}): ${said}`,
      );
    }
  }
  return dmPath(o.id);
}

export interface RemoveOptions {
  /** Attempts while the device is busy (default 20, 100 ms apart). */
  attempts?: number;
  delayMs?: number;
}

/**
 * Removes the snapshot device; one already gone counts as removed. A device still open (the VM
 * still runs) is retried for a while, then refused with an error that says so: nothing is torn
 * down under a running guest.
 */
export async function removeSnapshotDevice(id: string, o: RemoveOptions = {}): Promise<void> {
  const [cmd, ...args] = dmRemoveCommand(id);
  const attempts = o.attempts ?? 20;
  let said = '';
  for (let i = 0; i < attempts; i++) {
    const r = await runTool(cmd as string, args);
    if (r.code === 0) return;
    said = r.stderr.trim() || r.stdout.trim();
    const why = classifyDmsetupError(said);
    if (why === 'not-found' || why === 'no-device-mapper') return; // gone, or no device-mapper at all: nothing to remove
    if (why !== 'busy')
      throw new Error(`removing ${dmPath(id)}: \`${cmd} ${args.join(' ')}\` failed (exit ${r.code}): ${said}`);
    await new Promise((r2) => setTimeout(r2, o.delayMs ?? 100));
  }
  throw new Error(`${dmPath(id)} is still in use (${said}): stop the VM that has it open, then remove the disk again`);
}

/** Our snapshot devices (name wrenn-<id>, uuid with this data directory's tag): capsule ids. */
export async function listSnapshotDevices(tag: string): Promise<string[]> {
  const r = await runTool('dmsetup', ['info', '-c', '--noheadings', '-o', 'name,uuid', '--separator', ' ']);
  if (r.code !== 0) return []; // no device-mapper: no devices
  const ids: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const [name, uuid] = line.trim().split(' ');
    if (!name?.startsWith('wrenn-') || !uuid) continue;
    const id = name.slice('wrenn-'.length);
    if (uuid === dmUuid(id, tag)) ids.push(id);
  }
  return ids;
}
