// Volumes on this host: each a sparse ext4 image of its own size (<dataDir>/volumes/<id>/volume.img)
// loop-mounted at <id>/mnt, made and mounted by the same code as capsule disks (quota-disk.ts).
// What capsules and the content API see is <id>/mnt/data: stored in the canonical id range
// (HOST_ID_BASE + u, like template layers), so every capsule, whatever its own id range, sees the
// same files as its own ids through an idmapped bind (nsinit.c --volume), and several capsules
// share one volume read-write on one mounted file system. Filling it gives ENOSPC inside the
// volume only; the host's file system and the capsule's own disk are untouched.
// A QEMU capsule shares it too (exportForVm): <id>/vm-export is an idmapped bind of the data
// (stored HOST_ID_BASE + u shown as u, nosuid, nodev) that QEMU's 9p server exports to the guest,
// so the guest's ids land canonically on disk and every user sees the same files at once.
// A Firecracker capsule (no 9p or virtio-fs there) gets the image itself as a block device
// (attachToVm): the host mounts go, the files are re-owned to plain guest ids (owner-shift.ts;
// <id>/owners records the scheme, so the next host use shifts them back), and <id>/vm-holder names
// the VM, which holds the volume alone until it is released: one ext4 cannot be mounted by two kernels.
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { idmappedBind, runNative, unmount } from '@wrenn/native';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  VOLUME_LIMITS,
} from '@wrenn/protocol';
import { HOST_ID_BASE, ID_RANGE } from '../rootfs/id-map.js';
import { mountsUnder } from '../rootfs/remove-tree.js';
import { ensureExt4Mounted, formatExt4Image } from '../runtimes/namespace/quota-disk.js';
import { type OwnerScheme, shiftOwners } from './owner-shift.js';

/** e2fsck -fp: repairs what is safe to repair, refuses (exit >= 4) an image it cannot trust. */
async function checkExt4(image: string): Promise<void> {
  const r = await runNative('e2fsck', ['-f', '-p', image]);
  if (r.code === null || r.code >= 4)
    throw new FailedPreconditionError(
      `volume image ${image} failed its file system check after a VM used it (e2fsck exit ${r.code}): ${r.stdout.trim() || r.stderr.trim()}`,
    );
}

const VOLUME_ID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
// nosuid: a set-uid file written into a volume never runs as its owner (binds add it again).
// (nodev comes with every ext4 image mount: a device node a VM's root makes through QEMU's 9p
// server opens nothing on the host.)
const VOLUME_MOUNT_OPTIONS = 'nosuid';

export class VolumeStore {
  /** One operation at a time per volume (create, delete, mount). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly dir: string) {}

  private paths(id: string): {
    root: string;
    image: string;
    mnt: string;
    data: string;
    owners: string;
    vmHolder: string;
    vmExport: string;
  } {
    if (!VOLUME_ID_RE.test(id)) throw new InvalidArgumentError(`volume id '${id}' is malformed`);
    const root = join(this.dir, id);
    return {
      root,
      image: join(root, 'volume.img'),
      mnt: join(root, 'mnt'),
      data: join(root, 'mnt', 'data'),
      owners: join(root, 'owners'),
      vmHolder: join(root, 'vm-holder'),
      vmExport: join(root, 'vm-export'),
    };
  }

  /** The VM capsule the volume is attached to, if any. */
  vmHolder(id: string): Promise<string | undefined> {
    return readFile(this.paths(id).vmHolder, 'utf8').then(
      (t) => t.trim() || undefined,
      () => undefined,
    );
  }

  private async refuseIfInVm(id: string): Promise<void> {
    const holder = await this.vmHolder(id);
    if (holder)
      throw new FailedPreconditionError(
        `volume ${id} is attached to VM capsule ${holder}, which holds it alone (one ext4 cannot be mounted by two kernels); destroy that capsule first`,
      );
  }

  /** Mounts the volume on the host and brings its files into `to` (a no-op when already there). */
  private async mountAs(p: ReturnType<VolumeStore['paths']>, to: OwnerScheme): Promise<void> {
    const now = ((await readFile(p.owners, 'utf8').catch(() => 'canonical')).trim() || 'canonical') as OwnerScheme;
    // A VM's kernel wrote the image last (any ext4 it liked): checked before the host's kernel reads it.
    if (now !== 'canonical' && !(await mountsUnder(p.mnt)).includes(p.mnt)) await checkExt4(p.image);
    await ensureExt4Mounted(p.image, p.mnt, 'the volume', VOLUME_MOUNT_OPTIONS);
    if (now === to) return;
    await writeFile(p.owners, `shifting-to-${to}\n`);
    await shiftOwners(p.data, to);
    await writeFile(p.owners, `${to}\n`);
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
      await this.refuseIfInVm(id);
      await this.mountAs(p, 'canonical');
      return p.data;
    });
  }

  /**
   * The directory a VM's 9p server exports for the volume: the mounted data seen through an idmap
   * (stored HOST_ID_BASE + u as u; ids outside the range show as the overflow id and cannot be
   * set), nosuid and nodev, made once and shared by every VM that mounts the volume. Throws
   * FailedPrecondition while a Firecracker VM holds the image.
   */
  exportForVm(id: string): Promise<string> {
    const p = this.paths(id);
    return this.serial(id, async () => {
      if (!(await this.exists(id))) throw new NotFoundError(`volume ${id} is not on this host`);
      await this.refuseIfInVm(id);
      await this.mountAs(p, 'canonical');
      if (!(await mountsUnder(p.vmExport)).includes(p.vmExport)) {
        await mkdir(p.vmExport, { recursive: true, mode: 0o700 });
        await idmappedBind(p.data, p.vmExport, `${HOST_ID_BASE} 0 ${ID_RANGE}`);
      }
      return p.vmExport;
    });
  }

  /**
   * The volume's image for VM capsule `capsuleId` to open as a block device: its files re-owned to
   * guest ids, unmounted from the host, and recorded as held by that capsule. The caller makes
   * sure no namespace capsule binds it. Throws FailedPrecondition while another VM holds it.
   */
  attachToVm(id: string, capsuleId: string): Promise<string> {
    const p = this.paths(id);
    return this.serial(id, async () => {
      if (!(await this.exists(id))) throw new NotFoundError(`volume ${id} is not on this host`);
      const holder = await this.vmHolder(id);
      if (holder === capsuleId) return p.image;
      await this.refuseIfInVm(id);
      await this.mountAs(p, 'guest');
      // Not lazy: a busy mount (a file open on the host) must fail here, not linger under the VM.
      // The 9p export goes too (a QEMU VM may have used the volume before).
      for (const point of await mountsUnder(p.root)) await unmount(point);
      await writeFile(p.vmHolder, `${capsuleId}\n`);
      return p.image;
    });
  }

  /** Ends `capsuleId`'s hold on the volume (its VM is gone); the next host use shifts the files back. */
  releaseFromVm(id: string, capsuleId: string): Promise<void> {
    const p = this.paths(id);
    return this.serial(id, async () => {
      if ((await this.vmHolder(id)) === capsuleId) await rm(p.vmHolder, { force: true });
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

  private async removeFiles(p: { root: string }): Promise<void> {
    for (const point of await mountsUnder(p.root)) await unmount(point, { lazy: true });
    await rm(p.root, { recursive: true, force: true });
  }
}
