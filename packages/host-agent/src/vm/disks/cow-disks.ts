// Copy-on-write root disks for VM capsules, one interface over three ways of making them:
// - device-mapper: a `snapshot` device per capsule over the base image's shared read-only loop
//   device, writes going to a sparse per-capsule CoW file on a loop device of its own;
// - reflink: a copy sharing the base image's blocks (btrfs, XFS), where device-mapper is absent;
// - sparse-copy: a copy keeping the image's holes, everywhere else.
// Each disk's record (<dataDir>/disks/<id>/disk.json) says how it was made, so release and the
// stale cleanup at agent start work after a restart and whatever this host offers today.
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { BaseLoops } from './base-loops.js';
import { type CopyKind, copyDisk } from './copy-disk.js';
import { detectDeviceMapper, detectReflink } from './detect.js';
import {
  cowBytes,
  createSnapshotDevice,
  listSnapshotDevices,
  removeSnapshotDevice,
  snapshotTable,
} from './dm-snapshot.js';
import { attachLoop, detachLoop, listLoops, sectorsOf } from './loop.js';

export type CowDiskKind = 'device-mapper' | CopyKind;

export interface CowDisk {
  id: string;
  kind: CowDiskKind;
  /** What the VM opens: /dev/mapper/wrenn-<id>, or the capsule's copy of the image. */
  path: string;
  /** The file holding what this capsule changed (the CoW file, or the copy). */
  file: string;
  /** Removes the disk (the VM must be stopped first); idempotent. */
  release(): Promise<void>;
}

/** disk.json: everything needed to take the disk apart again. */
interface DiskRecord {
  id: string;
  kind: CowDiskKind;
  base: string;
  path: string;
  file: string;
  /** The base image's inode: the CoW file's chunks only mean something over that very image. */
  baseIno?: number;
  baseLoop?: string;
  cowLoop?: string;
}

export interface CowDisksOptions {
  /** WRENN_DIR: records and CoW files go to <dataDir>/disks. */
  dataDir: string;
  /** Forces a kind (default: device-mapper where usable, else reflink where the file system can, else sparse-copy). */
  kind?: CowDiskKind;
  /** Bytes added to each CoW file beyond what a full rewrite of the base needs (device-mapper only). */
  extraBytes?: number;
  /** How often a busy snapshot device is retried on release (100 ms apart; default 20). */
  removeAttempts?: number;
}

/** What cleanupStale removed, for logs and tests. */
export interface StaleReport {
  disks: string[];
  snapshotDevices: string[];
  loopDevices: string[];
  errors: string[];
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,50}$/;
const RECORD = 'disk.json';

export class CowDisks {
  readonly dir: string;
  readonly bases: BaseLoops;
  /** Tags this data directory's snapshot devices (their dm uuid), so cleanup leaves others' alone. */
  readonly tag: string;

  constructor(
    private readonly opts: CowDisksOptions,
    /** The kind new disks get. */
    readonly kind: CowDiskKind,
    /** Why that kind, in words for logs and test output. */
    readonly reason: string,
  ) {
    this.dir = join(resolve(opts.dataDir), 'disks');
    this.bases = new BaseLoops(join(this.dir, 'bases.json'));
    this.tag = createHash('sha256').update(resolve(opts.dataDir)).digest('hex').slice(0, 8);
  }

  private recordPath(id: string): string {
    return join(this.dir, id, RECORD);
  }

  private async readRecord(id: string): Promise<DiskRecord | undefined> {
    const text = await readFile(this.recordPath(id), 'utf8').catch(() => '');
    if (!text) return undefined;
    try {
      return JSON.parse(text) as DiskRecord;
    } catch (err) {
      throw new Error(
        `the disk record ${this.recordPath(id)} is unreadable (${(err as Error).message}): fix or delete it`,
      );
    }
  }

  private writeRecord(r: DiskRecord): Promise<void> {
    return writeFile(this.recordPath(r.id), JSON.stringify(r));
  }

  private disk(r: DiskRecord): CowDisk {
    return { id: r.id, kind: r.kind, path: r.path, file: r.file, release: () => this.release(r.id) };
  }

  /** Makes capsule `id`'s disk from `baseImage`; on failure nothing it made is left behind. */
  async create(id: string, baseImage: string): Promise<CowDisk> {
    if (!ID_RE.test(id ?? '')) throw new Error(`invalid capsule id ${JSON.stringify(id)} for a disk`);
    const base = resolve(baseImage);
    const st = await stat(base).catch(() => undefined);
    if (!st?.isFile()) throw new Error(`the base image ${base} does not exist: build the template's VM image first`);
    if (await this.readRecord(id)) throw new Error(`capsule ${id} already has a disk: release it first`);
    const dir = join(this.dir, id);
    await mkdir(dir, { recursive: true });
    try {
      const r =
        this.kind === 'device-mapper'
          ? await this.createSnapshot(id, base, st.size, st.ino)
          : await this.createCopy(id, base, this.kind);
      return this.disk(r);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private async createCopy(id: string, base: string, kind: CopyKind): Promise<DiskRecord> {
    const file = join(this.dir, id, 'rootfs.ext4');
    await copyDisk(kind, base, file);
    const r: DiskRecord = { id, kind, base, path: file, file };
    await this.writeRecord(r);
    return r;
  }

  /**
   * Sparse CoW file, then base loop (shared) -> CoW loop -> `dmsetup create`. The record is
   * written first and after each step, so a crash in between leaves something cleanupStale can
   * take apart; a failure undoes the steps done, newest first.
   */
  private async createSnapshot(id: string, base: string, baseBytes: number, baseIno: number): Promise<DiskRecord> {
    const file = join(this.dir, id, 'cow');
    const size = cowBytes(baseBytes, this.opts.extraBytes ?? 0); // validates before anything is attached
    const r: DiskRecord = { id, kind: 'device-mapper', base, baseIno, path: '', file };
    await this.writeRecord(r);
    const fh = await open(file, 'wx');
    try {
      await fh.truncate(size); // sparse: a fresh, zeroed persistent exception store
    } finally {
      await fh.close();
    }
    try {
      await this.assemble(r);
    } catch (err) {
      await rm(file, { force: true });
      throw err;
    }
    return r;
  }

  /** Attaches the loop devices under an existing CoW file and creates the snapshot device over them. */
  private async assemble(r: DiskRecord): Promise<void> {
    const undo: (() => Promise<void>)[] = [];
    try {
      const baseLoop = await this.bases.acquire(r.base, r.id);
      undo.push(() => this.bases.release(baseLoop, r.id));
      r.baseLoop = baseLoop;
      await this.writeRecord(r);
      // One left attached to this file (a crash after the attach) is used again.
      let cowLoop = (await listLoops()).find((d) => d.backFile === r.file && !d.deleted && !d.readOnly)?.name;
      if (!cowLoop) {
        const attached = await attachLoop(r.file, false);
        undo.push(() => detachLoop(attached));
        cowLoop = attached;
      }
      r.cowLoop = cowLoop;
      await this.writeRecord(r);
      const table = snapshotTable({ sectors: await sectorsOf(baseLoop), baseLoop, cowLoop });
      r.path = await createSnapshotDevice({ id: r.id, table, tag: this.tag });
      await this.writeRecord(r);
    } catch (err) {
      for (const u of undo.reverse()) await u().catch(() => {});
      throw err;
    }
  }

  /**
   * Makes sure capsule `id`'s disk can be opened before its VM starts again (resume): a snapshot
   * device gone with a host reboot is rebuilt over the same CoW file, whose persistent exception
   * store still holds the capsule's writes. A failure leaves the CoW file and record untouched.
   */
  async ensure(id: string): Promise<CowDisk | undefined> {
    const r = ID_RE.test(id ?? '') ? await this.readRecord(id) : undefined;
    if (!r) return undefined;
    if (!(await stat(r.file).catch(() => undefined)))
      throw new Error(`the disk of capsule ${id} is gone (${r.file} is missing): the capsule cannot start again`);
    if (r.kind !== 'device-mapper') return this.disk(r);
    if (r.path && (await stat(r.path).catch(() => undefined))?.isBlockDevice()) return this.disk(r);
    const st = await stat(r.base).catch(() => undefined);
    if (!st)
      throw new Error(`the base image ${r.base} of capsule ${id}'s disk is missing: the capsule cannot start again`);
    if (r.baseIno !== undefined && st.ino !== r.baseIno)
      throw new Error(
        `the base image ${r.base} was rebuilt after capsule ${id}'s disk was made: its changes cannot be laid over the new image`,
      );
    await this.assemble(r);
    return this.disk(r);
  }

  /** The disk of capsule `id` as recorded (also after an agent restart), or undefined. */
  async get(id: string): Promise<CowDisk | undefined> {
    if (!ID_RE.test(id ?? '')) return undefined;
    const r = await this.readRecord(id);
    return r ? this.disk(r) : undefined;
  }

  /**
   * Removes capsule `id`'s disk: the snapshot device (refused while a VM holds it open), its CoW
   * loop device, the capsule's use of the base loop device, then the files. Idempotent.
   */
  async release(id: string): Promise<void> {
    if (!ID_RE.test(id ?? '')) throw new Error(`invalid capsule id ${JSON.stringify(id)} for a disk`);
    const r = await this.readRecord(id);
    if (r?.kind === 'device-mapper') {
      await removeSnapshotDevice(id, { attempts: this.opts.removeAttempts });
      if (r.cowLoop) {
        // Only while it still backs our CoW file: after a reboot the number may be someone else's.
        const dev = (await listLoops()).find((d) => d.name === r.cowLoop);
        if (dev?.backFile === r.file) await detachLoop(r.cowLoop);
      }
      if (r.baseLoop) await this.bases.release(r.baseLoop, id);
    }
    await rm(join(this.dir, id), { recursive: true, force: true });
  }

  /** Bytes the capsule's own data takes on disk (its CoW file or its copy's allocated blocks). */
  async usedBytes(id: string): Promise<number> {
    const r = await this.readRecord(id);
    const st = r ? await stat(r.file).catch(() => undefined) : undefined;
    return st ? st.blocks * 512 : 0;
  }

  /**
   * Agent start: disks, snapshot devices and loop devices of this data directory that no known
   * capsule uses are removed. A device still busy is reported in `errors` and left for the next run.
   */
  async cleanupStale(knownIds: ReadonlySet<string>): Promise<StaleReport> {
    const report: StaleReport = { disks: [], snapshotDevices: [], loopDevices: [], errors: [] };
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
        return true;
      } catch (err) {
        report.errors.push(`${what}: ${(err as Error).message}`);
        return false;
      }
    };
    for (const id of await readdir(this.dir).catch(() => [] as string[])) {
      if (!ID_RE.test(id) || knownIds.has(id)) continue;
      if (await attempt(`disk of ${id}`, () => this.release(id))) report.disks.push(id);
    }
    // Devices whose records were lost (a crash between steps, a deleted directory).
    for (const id of await listSnapshotDevices(this.tag)) {
      if (knownIds.has(id)) continue;
      if (await attempt(`snapshot device of ${id}`, () => removeSnapshotDevice(id, { attempts: 1 })))
        report.snapshotDevices.push(id);
    }
    const records = new Map<string, DiskRecord>();
    for (const id of knownIds) {
      const r = ID_RE.test(id) ? await this.readRecord(id) : undefined;
      if (r) records.set(id, r);
    }
    const inUse = (loop: string) => [...records.values()].some((r) => r.cowLoop === loop || r.baseLoop === loop);
    report.loopDevices.push(...(await this.bases.reconcile((user) => knownIds.has(user) && records.has(user))));
    const baseLoops = new Set((await this.bases.entries()).map((e) => e.loop));
    const images = join(resolve(this.opts.dataDir), 'images');
    const under = (dir: string, file: string) => {
      const rel = relative(dir, file);
      return !!file && rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
    };
    for (const d of await listLoops()) {
      // Ours: CoW files, and base images attached read-only. Other loop devices in the data
      // directory (namespace capsules' mounted disk images) are not this module's business.
      const ours = under(this.dir, d.backFile) || (d.readOnly && under(images, d.backFile));
      if (!ours || inUse(d.name) || baseLoops.has(d.name)) continue;
      // Ours and unused: a CoW file of a capsule gone, or a base image no registry entry names.
      if (await attempt(`loop device ${d.name} (${d.backFile})`, () => detachLoop(d.name)))
        report.loopDevices.push(d.name);
    }
    return report;
  }
}

/** Detects what this host offers and returns the disks of `dataDir`. */
export async function createCowDisks(opts: CowDisksOptions): Promise<CowDisks> {
  if (!opts?.dataDir) throw new Error('VM disks need dataDir (WRENN_DIR, e.g. /var/lib/wrenn)');
  if (opts.kind && !['device-mapper', 'reflink', 'sparse-copy'].includes(opts.kind))
    throw new Error(`unknown disk kind ${JSON.stringify(opts.kind)}: device-mapper, reflink or sparse-copy`);
  const disksDir = join(resolve(opts.dataDir), 'disks');
  await mkdir(disksDir, { recursive: true });
  if (opts.kind) return new CowDisks(opts, opts.kind, `${opts.kind} (configured)`);
  const dm = await detectDeviceMapper();
  if (dm.usable) return new CowDisks(opts, 'device-mapper', `device-mapper snapshots (${dm.reason})`);
  if (await detectReflink(disksDir))
    return new CowDisks(opts, 'reflink', `reflink copies (${dm.reason}; ${disksDir} can reflink)`);
  return new CowDisks(opts, 'sparse-copy', `sparse copies (${dm.reason}; ${disksDir} cannot reflink)`);
}
