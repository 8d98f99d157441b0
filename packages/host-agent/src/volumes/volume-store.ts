// Volumes on this host: each a sparse ext4 image of its own size (<dataDir>/volumes/<id>/volume.img)
// loop-mounted at <id>/mnt, made and mounted by the same code as capsule disks (quota-disk.ts).
// What capsules and the content API see is <id>/mnt/data: stored in the canonical id range
// (HOST_ID_BASE + u, like template layers), so every capsule, whatever its own id range, sees the
// same files as its own ids through an idmapped bind (nsinit.c --volume), and several capsules
// share one volume read-write on one mounted file system. Filling it gives ENOSPC inside the
// volume only; the host's file system and the capsule's own disk are untouched.
import { chmod, chown, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { unmount } from '@wrenn/native';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, VOLUME_LIMITS } from '@wrenn/protocol';
import { HOST_ID_BASE } from '../rootfs/id-map.js';
import { mountsUnder } from '../rootfs/remove-tree.js';
import { ensureExt4Mounted, formatExt4Image } from '../runtimes/namespace/quota-disk.js';

const VOLUME_ID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
// nosuid: a set-uid file written into a volume never runs as its owner (binds add it again).
const VOLUME_MOUNT_OPTIONS = 'nosuid';

export class VolumeStore {
  /** One operation at a time per volume (create, delete, mount). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly dir: string) {}

  private paths(id: string): { root: string; image: string; mnt: string; data: string } {
    if (!VOLUME_ID_RE.test(id)) throw new InvalidArgumentError(`volume id '${id}' is malformed`);
    const root = join(this.dir, id);
    return { root, image: join(root, 'volume.img'), mnt: join(root, 'mnt'), data: join(root, 'mnt', 'data') };
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.locks.set(id, next);
    void next
      .finally(() => {
        if (this.locks.get(id) === next) this.locks.delete(id);
      })
      .catch(() => undefined);
    return next;
  }

  async exists(id: string): Promise<boolean> {
    return stat(this.paths(id).image).then(
      () => true,
      () => false,
    );
  }

  /** Formats and mounts a new volume of `sizeMb` MiB. */
  create(id: string, sizeMb: number): Promise<void> {
    const p = this.paths(id);
    if (!Number.isInteger(sizeMb) || sizeMb < VOLUME_LIMITS.minSizeMb || sizeMb > VOLUME_LIMITS.maxSizeMb)
      throw new InvalidArgumentError(
        `volume size ${sizeMb} MiB is outside ${VOLUME_LIMITS.minSizeMb}..${VOLUME_LIMITS.maxSizeMb}`,
      );
    return this.serial(id, async () => {
      if (await this.exists(id)) throw new AlreadyExistsError(`volume ${id} already exists on this host`);
      await mkdir(p.root, { recursive: true, mode: 0o700 });
      try {
        await formatExt4Image(p.image, sizeMb, 0);
        await ensureExt4Mounted(p.image, p.mnt, 'the volume', VOLUME_MOUNT_OPTIONS);
        await mkdir(p.data);
        // Root inside owns it; every user of a capsule may write at its top (like /tmp without the sticky bit).
        await chown(p.data, HOST_ID_BASE, HOST_ID_BASE);
        await chmod(p.data, 0o777);
      } catch (err) {
        await this.removeFiles(p).catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * The host directory holding the volume's files, mounted (again, after a host reboot) if needed.
   * Throws NotFoundError for a volume this host does not hold.
   */
  mountedData(id: string): Promise<string> {
    const p = this.paths(id);
    return this.serial(id, async () => {
      if (!(await this.exists(id))) throw new NotFoundError(`volume ${id} is not on this host`);
      await ensureExt4Mounted(p.image, p.mnt, 'the volume', VOLUME_MOUNT_OPTIONS);
      return p.data;
    });
  }

  /** Unmounts and removes a volume (capsules that still had it mounted keep the file system until they end). */
  delete(id: string): Promise<void> {
    const p = this.paths(id);
    return this.serial(id, async () => {
      if (!(await this.exists(id))) throw new NotFoundError(`volume ${id} is not on this host`);
      await this.removeFiles(p);
    });
  }

  /**
   * Unmounts every volume on the host (their images stay; the next use mounts them again). Only
   * when no capsule holds one: a volume still bound into a capsule and mounted again through a
   * second loop device would be one ext4 file system written by two kernels' views at once.
   */
  async unmountAll(): Promise<void> {
    for (const point of await mountsUnder(this.dir)) await unmount(point, { lazy: true }).catch(() => undefined);
  }

  private async removeFiles(p: { root: string; mnt: string }): Promise<void> {
    for (const point of await mountsUnder(p.mnt)) await unmount(point, { lazy: true });
    await rm(p.root, { recursive: true, force: true });
  }
}
