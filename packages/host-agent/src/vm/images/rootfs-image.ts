// The ext4 root disk of a VM capsule, built once per template at <imagesDir>/<template>/rootfs.ext4:
// the template's layers merged (overlayfs honours whiteouts), ownership shifted back to the ids
// a VM sees (the store keeps files at uid + HOST_ID_BASE for user namespaces), plus what a VM
// needs to run envd: /opt/wrenn/bin/{busybox,wrenn-init}, the host's node binary and libraries
// (/opt/wrenn/runtime, like the namespace runtime's binds) and the envd bundle (/opt/wrenn/envd).
import { execFile } from 'node:child_process';
import {
  access,
  chmod,
  copyFile,
  cp,
  lchown,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HOST_ID_BASE, ID_RANGE } from '../../rootfs/id-map.js';
import type { ProgressFn } from '../../rootfs/recipe.js';
import type { TemplateStore } from '../../rootfs/template-store.js';
import { defaultAppDir, resolveNodeRuntime } from '../../runtimes/namespace/node-runtime.js';
import { guestInputsFingerprint } from './guest-inputs.js';
import { wrennInitFile } from './wrenn-init-files.js';

const run = promisify(execFile);

export const ROOTFS_IMAGE = 'rootfs.ext4';
export const GUEST_INIT = '/opt/wrenn/bin/wrenn-init';
/** Free space left in the image for the capsule's own files (the file is sparse: costs nothing until used). */
export const DEFAULT_FREE_BYTES = 2 * 1024 ** 3;

/** Next to rootfs.ext4: the fingerprint of the guest code it was built with (guest-inputs.ts). */
const INPUTS_SUFFIX = '.inputs';
/** Files a VM snapshot template keeps beside its disk (QEMU, Firecracker). */
const VM_SNAPSHOT_MARKERS = ['vm-snapshot.json', 'firecracker-snapshot.json'];

const holdsVmSnapshot = async (dir: string) =>
  (await Promise.all(VM_SNAPSHOT_MARKERS.map((f) => exists(join(dir, f))))).some(Boolean);

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** Where the envd bundle is (scripts/bundle-envd.mjs writes it; `npm run build` runs that). */
export function envdBundleDir(appDir = defaultAppDir()): string {
  return join(appDir, 'packages/envd/dist/bundle');
}

async function shiftBack(dir: string): Promise<void> {
  const un = (id: number) => (id >= HOST_ID_BASE && id < HOST_ID_BASE + ID_RANGE ? id - HOST_ID_BASE : id);
  const walk = async (p: string): Promise<void> => {
    const s = await lstat(p);
    if (s.uid !== un(s.uid) || s.gid !== un(s.gid)) await lchown(p, un(s.uid), un(s.gid));
    if (s.isDirectory()) for (const n of await readdir(p)) await walk(join(p, n));
  };
  await walk(dir);
}

async function du(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', dir]);
  return Number(stdout.split('\t')[0]);
}

/** Copies the merged layers (top first) into an empty directory `dst`. */
async function mergeLayers(layers: string[], dst: string, scratch: string): Promise<void> {
  if (layers.length === 1) {
    await run('cp', ['-a', `${layers[0]}/.`, dst]);
    return;
  }
  const mnt = join(scratch, 'merged');
  await mkdir(mnt, { recursive: true });
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${layers.join(':')}`, mnt]);
  try {
    await run('cp', ['-a', `${mnt}/.`, dst]);
  } finally {
    await run('umount', [mnt]);
  }
}

export interface RootfsImageOptions {
  store: TemplateStore;
  template: string;
  onProgress?: ProgressFn;
  /** Install root holding the envd bundle; default: the one this module is part of. */
  appDir?: string;
  nodePath?: string;
  freeBytes?: number;
  /** Rebuild even when the image exists. */
  force?: boolean;
}

export function ensureRootfsImage(opts: RootfsImageOptions): Promise<string> {
  // One build per template image at a time in this process: two VMs created at once would share
  // the scratch directory (named by pid) and remove each other's files. Other processes use their
  // own scratch and temporary names, and the finished image is renamed into place.
  const key = join(opts.store.templateDir(opts.template), ROOTFS_IMAGE);
  const running = building.get(key);
  if (running) return running;
  const p = buildRootfsImage(opts).finally(() => building.delete(key));
  building.set(key, p);
  return p;
}

const building = new Map<string, Promise<string>>();

async function buildRootfsImage(opts: RootfsImageOptions): Promise<string> {
  const progress = opts.onProgress ?? (() => {});
  const manifest = await opts.store.ensureTemplate(opts.template, { onProgress: progress });
  const tdir = opts.store.templateDir(opts.template);
  const out = join(tdir, ROOTFS_IMAGE);
  // A VM snapshot template's disk belongs to its frozen memory: never rebuilt.
  if (!opts.force && (await exists(out)) && (await holdsVmSnapshot(tdir))) return out;
  const appDir = opts.appDir ?? defaultAppDir();
  const bundle = envdBundleDir(appDir);
  if (!(await exists(join(bundle, 'envd.mjs')))) {
    throw new Error(`the envd bundle ${bundle}/envd.mjs is missing: run \`npm run build\` (scripts/bundle-envd.mjs)`);
  }
  const initScript = await wrennInitFile('wrenn-init.sh');
  const nodePath = opts.nodePath ?? process.execPath;
  // The template's layer ids too: a base template rebuilt after its recipe changed (new layer id,
  // template-store.ts) gets a new disk; VMs running on the old one keep its inode open.
  const guest = await guestInputsFingerprint({
    initScript,
    busybox: '/bin/busybox',
    nodePath,
    envdBundleDir: bundle,
  });
  const fingerprint = `${guest} ${manifest.layers.join(',')}`;
  const stampFile = `${out}${INPUTS_SUFFIX}`;
  if (!opts.force && (await exists(out))) {
    const stamp = await readFile(stampFile, 'utf8').catch(() => '');
    if (stamp.trim() === fingerprint) return out;
    progress(
      `rootfs ${opts.template}: the template's layers, guest init, node or envd changed since the image was built; rebuilding it`,
    );
  }
  const layers = await opts.store.layerDirs(manifest);
  const scratch = join(opts.store.imagesDir, `.vm-${opts.template}-${process.pid}`);
  const root = join(scratch, 'root');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  try {
    progress(`rootfs ${opts.template}: merging ${layers.length} layer(s)`);
    await mergeLayers(layers, root, scratch);
    await shiftBack(root);
    progress(`rootfs ${opts.template}: adding wrenn-init, busybox, node and the envd bundle under /opt/wrenn`);
    for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'root', 'opt/wrenn/bin', 'opt/wrenn/envd']) {
      await mkdir(join(root, d), { recursive: true });
    }
    await chmod(join(root, 'tmp'), 0o1777);
    await copyFile('/bin/busybox', join(root, 'opt/wrenn/bin/busybox'));
    await chmod(join(root, 'opt/wrenn/bin/busybox'), 0o755);
    await writeFile(join(root, GUEST_INIT), initScript, { mode: 0o755 });
    const layout = await resolveNodeRuntime(nodePath, appDir);
    for (const b of layout.binds) {
      if (!b.dst.startsWith('/opt/wrenn/runtime/')) continue; // the app bind: VMs get the bundle instead
      await mkdir(join(root, b.dst, '..'), { recursive: true });
      await copyFile(b.src, join(root, b.dst));
      await chmod(join(root, b.dst), (await stat(b.src)).mode & 0o7777);
    }
    await cp(bundle, join(root, 'opt/wrenn/envd'), { recursive: true });
    const used = await du(root);
    const size = Math.ceil((used * 1.2 + (opts.freeBytes ?? DEFAULT_FREE_BYTES)) / 1024 ** 2);
    progress(`rootfs ${opts.template}: mkfs.ext4 ${size} MiB (sparse; ${Math.round(used / 1024 ** 2)} MiB of files)`);
    const tmp = `${out}.tmp-${process.pid}`;
    await rm(tmp, { force: true });
    await run('mkfs.ext4', ['-q', '-F', '-L', 'wrenn-root', '-E', 'root_owner=0:0', '-d', root, tmp, `${size}M`]).catch(
      (err: Error) => {
        throw new Error(`mkfs.ext4 -d failed (${err.message}); install e2fsprogs >= 1.43`);
      },
    );
    await rename(tmp, out);
    await writeFile(stampFile, `${fingerprint}\n`);
    progress(`rootfs ${opts.template}: ${out} ready`);
    return out;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
