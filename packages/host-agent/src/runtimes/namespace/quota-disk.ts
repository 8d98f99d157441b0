// Each capsule's writable layer lives on a file system of its own: a sparse ext4 image, loop
// mounted at <sandbox>/disk, holding the overlay's upper and work dirs and the capsule's own
// /etc/hosts, /etc/hostname and /etc/resolv.conf (etc-files/, bound into /etc, outside the upper
// dir so snapshots leave them out). A capsule that fills its disk gets ENOSPC inside at its quota;
// the host's file system never fills up. Overlayfs reports the upper file system in statfs, so
// `df /` inside shows the capsule's own disk. Mounted with `discard`: what the capsule deletes is
// punched out of the sparse image, so the host gets the space back.
//
// A create first checks the data dir's file system can hold the whole disk it promises, plus a
// reserve for the host (statfs, microseconds): sparse images would otherwise promise space that
// is not there and fail later, inside a running capsule.
//
// mkfs costs tens of milliseconds, so a few blank images are kept formatted ahead of demand;
// a create only renames one into its sandbox and mounts it.

import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, statfsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileNative, loopMount } from '@wrenn/native';
import { mountsUnder } from '../../rootfs/remove-tree.js';
import { HostCapacityError } from '../capacity-error.js';

// A vfork spawn (a fork of the agent costs milliseconds; the mount is on the create path).
const run = execFileNative;
/** How long after a create took a blank image the pool starts formatting its replacement. */
const REFILL_DELAY_MS = 300;

export const DISK_IMAGE = 'disk.img';
export const DISK_MOUNT = 'disk';
/** Free space kept for the host beyond a new capsule's whole disk, unless configured (WRENN_DISK_RESERVE_MB). */
export const DEFAULT_DISK_RESERVE_MB = 1024;
// nodev: device files on the disk stay inert; discard: deletes inside free the image's blocks.
const MOUNT_OPTIONS = 'loop,nodev,discard';
const MiB = 1024 * 1024;

export interface QuotaDiskOptions {
  /** Where blank formatted images wait (<dataDir>/disk-pool). */
  poolDir: string;
  /** Size of each capsule's disk in MiB (the image is sparse: it costs what is written). */
  sizeMb: number;
  /** Owner of the file system's root (the capsule's root user on the host). */
  rootUid: number;
  /** Blank images kept ready (default 2). */
  spare?: number;
  /** Free space (MiB) the host keeps beyond a new disk; a create that would eat into it is refused. */
  reserveMb?: number;
}

/**
 * Formats `file` as a sparse ext4 image of `sizeMb` MiB whose root directory belongs to `rootUid`
 * (created with `wx`: never formats a file someone else is formatting). Capsule disks and volumes
 * (volumes/volume-store.ts) are made by it.
 */
export async function formatExt4Image(file: string, sizeMb: number, rootUid: number): Promise<void> {
  await writeFile(file, '', { flag: 'wx' });
  await truncate(file, sizeMb * MiB);
  const owner = `${rootUid}:${rootUid}`;
  // Niced: blanks are formatted ahead of demand, behind the capsules that are starting.
  await run('nice', [
    '-n',
    '19',
    'mkfs.ext4',
    '-q',
    '-F',
    '-m',
    '0',
    '-E',
    `lazy_itable_init=1,lazy_journal_init=1,root_owner=${owner}`,
    file,
  ]).catch((err: Error) => {
    throw new Error(`formatting a disk image failed (mkfs.ext4 from e2fsprogs): ${err.message}`);
  });
}

/** Loop-mounts the ext4 `image` at `mountPoint` (nodev, discard, and `extra` options); `what` names it in errors. */
export async function mountExt4Image(image: string, mountPoint: string, what: string, extra = ''): Promise<void> {
  // By system call: util-linux's mount -o loop opens every loop device of the host first.
  await loopMount(image, mountPoint, 'ext4', extra ? `${MOUNT_OPTIONS},${extra}` : MOUNT_OPTIONS).catch(
    (err: Error) => {
      throw new Error(`mounting ${what} ${image} failed (needs loop devices): ${err.message}`);
    },
  );
}

/** Mounts `image` at `mountPoint` unless it is mounted there already (after a host reboot). */
export async function ensureExt4Mounted(image: string, mountPoint: string, what: string, extra = ''): Promise<void> {
  if ((await mountsUnder(mountPoint)).includes(mountPoint)) return;
  await mkdir(mountPoint, { recursive: true });
  await mountExt4Image(image, mountPoint, what, extra);
}

export class QuotaDisks {
  private filling: Promise<void> | undefined;
  private madeDir = false;
  private closed = false;

  constructor(private readonly o: QuotaDiskOptions) {}

  /** The overlay dirs of a capsule whose disk is mounted at <sandboxDir>/disk. */
  static dirs(sandboxDir: string): { upper: string; work: string } {
    return { upper: join(sandboxDir, DISK_MOUNT, 'upper'), work: join(sandboxDir, DISK_MOUNT, 'work') };
  }

  /** Where the capsule's /etc/hosts, /etc/hostname and /etc/resolv.conf live on its disk. */
  static etcDir(sandboxDir: string): string {
    return join(sandboxDir, DISK_MOUNT, 'etc-files');
  }

  /**
   * Throws HostCapacityError unless the file system of `dir` (the data dir) has room for one more
   * whole disk plus the reserve.
   */
  checkRoom(dir: string): void {
    const fs = statfsSync(dir); // microseconds: cheaper than a trip through the thread pool
    const free = fs.bavail * fs.bsize;
    const reserveMb = this.o.reserveMb ?? DEFAULT_DISK_RESERVE_MB;
    const need = (this.o.sizeMb + reserveMb) * MiB;
    if (free < need) {
      throw new HostCapacityError(
        `not enough disk space on this host for a capsule: its disk needs ${this.o.sizeMb} MiB plus a reserve of ` +
          `${reserveMb} MiB (WRENN_DISK_RESERVE_MB), but ${dir} has ${Math.floor(free / MiB)} MiB free`,
      );
    }
  }

  /**
   * Formats blank images until `spare` are ready (in the background for callers that do not wait).
   * `afterMs`: start that late, so a refill does not compete with the create that took the image
   * (2 cores: the spawn and mkfs would slow that capsule's start by ~10 ms).
   */
  fill(afterMs = 0): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.filling ??= (afterMs > 0 ? sleep(afterMs) : Promise.resolve())
      .then(() => this.fillNow())
      .finally(() => {
        this.filling = undefined;
      });
    return this.filling;
  }

  private async ready(): Promise<string[]> {
    // Made with its parents once; after that a pool dir that is gone stays gone (a refill that runs
    // after the data dir was removed must not bring it back).
    if (!this.madeDir) await mkdir(this.o.poolDir, { recursive: true });
    this.madeDir = true;
    const names = await readdir(this.o.poolDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[]; // removed: creates format their disk themselves
      throw err;
    });
    return names.filter((n) => n.endsWith(`-${this.o.sizeMb}m.img`));
  }

  private async fillNow(): Promise<void> {
    // Half-made images of a crashed agent are not named *.img yet: drop them. Those named with
    // this process's pid are being formatted right now (by another runtime of this process).
    for (const n of await readdir(this.o.poolDir).catch(() => [] as string[])) {
      if (n.endsWith('.tmp') && !n.startsWith(`${process.pid}-`)) await rm(join(this.o.poolDir, n), { force: true });
    }
    for (let have = (await this.ready()).length; have < (this.o.spare ?? 2) && !this.closed; have++) {
      // Unique in the process, not just in this instance: several runtimes of one process share
      // a data dir (tests do), and two fills naming the same file formatted it twice at once.
      const name = `${process.pid}-${Date.now()}-${randomBytes(4).toString('hex')}-${this.o.sizeMb}m.img`;
      const tmp = join(this.o.poolDir, `${name}.tmp`);
      await this.format(tmp);
      await rename(tmp, join(this.o.poolDir, name));
    }
  }

  private format(file: string): Promise<void> {
    return formatExt4Image(file, this.o.sizeMb, this.o.rootUid);
  }

  /**
   * Gives the capsule in `sandboxDir` its disk: a blank image moved in (or formatted now when
   * none is ready), loop-mounted at <sandboxDir>/disk with empty upper and work dirs.
   */
  async attach(sandboxDir: string): Promise<{ upper: string; work: string }> {
    const image = join(sandboxDir, DISK_IMAGE);
    const mountPoint = join(sandboxDir, DISK_MOUNT);
    if (!(await this.takeBlank(image))) await this.format(image);
    void this.fill(REFILL_DELAY_MS).catch(() => undefined);
    await mkdir(mountPoint);
    await mountExt4Image(image, mountPoint, 'the capsule disk');
    // A handful of syscalls of microseconds each: done synchronously, they cost less than one
    // round trip through libuv's thread pool (which a busy host makes longer still).
    const dirs = QuotaDisks.dirs(sandboxDir);
    for (const d of [dirs.upper, dirs.work, QuotaDisks.etcDir(sandboxDir)]) mkdirSync(d);
    // The upper dir's root is the merged "/": it must belong to root inside the capsule. Both dirs
    // are seen through an idmapped mount that hides ids outside the capsule's range.
    for (const d of [dirs.upper, dirs.work]) chownSync(d, this.o.rootUid, this.o.rootUid);
    chmodSync(dirs.upper, 0o755);
    return dirs;
  }

  /** Moves a ready blank image to `dest`; false when none is left (another create may take one first). */
  private async takeBlank(dest: string): Promise<boolean> {
    for (const name of await this.ready()) {
      try {
        await rename(join(this.o.poolDir, name), dest);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return false;
  }

  /**
   * Mounts the disk of a capsule whose mount is gone (a host reboot while it was hibernated):
   * its files are all in the image.
   */
  static async ensureMounted(sandboxDir: string): Promise<void> {
    await ensureExt4Mounted(join(sandboxDir, DISK_IMAGE), join(sandboxDir, DISK_MOUNT), "the capsule's disk");
  }

  /** Stops refilling and waits for a fill under way: call before removing the data dir. */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling?.catch(() => undefined);
  }

  /** Removes the blank images (agent shutdown is free to keep them; tests call this). */
  async clear(): Promise<void> {
    await rm(this.o.poolDir, { recursive: true, force: true });
  }
}
