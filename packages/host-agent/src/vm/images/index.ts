// Guest images for the VM runtimes (qemu, firecracker): kernel + initramfs, and an ext4 root
// disk per template. `buildVmImages` is the one entry point; it prints progress lines.

import { join } from 'node:path';
import type { ProgressFn } from '../../rootfs/recipe.js';
import { TemplateStore } from '../../rootfs/template-store.js';
import { ensureGuestKernel, type GuestKernel } from './kernel.js';
import { ensureRootfsImage } from './rootfs-image.js';

export { ensureGuestKernel, extractVmlinux, GUEST_MODULES, type GuestKernel } from './kernel.js';
export { ensureRootfsImage, envdBundleDir, GUEST_INIT, ROOTFS_IMAGE, type RootfsImageOptions } from './rootfs-image.js';

export interface VmImages {
  kernel: GuestKernel;
  rootfs: string;
}

export interface BuildVmImagesOptions {
  dataDir: string;
  template: string;
  store?: TemplateStore;
  onProgress?: ProgressFn;
  force?: boolean;
}

export async function buildVmImages(opts: BuildVmImagesOptions): Promise<VmImages> {
  const onProgress = opts.onProgress ?? ((m: string) => process.stderr.write(`[wrenn vm-images] ${m}\n`));
  const store = opts.store ?? new TemplateStore({ imagesDir: join(opts.dataDir, 'images') });
  const kernel = await ensureGuestKernel(opts.dataDir, onProgress);
  const rootfs = await ensureRootfsImage({ store, template: opts.template, onProgress, force: opts.force });
  return { kernel, rootfs };
}
