// The guest kernel for VM capsules, taken from Debian's `linux-image-amd64` package without
// installing it on the host: `apt-get download` into <dataDir>/kernels, unpacked with dpkg-deb.
// Gives bzImage (QEMU), vmlinux (Firecracker, extracted from the bzImage's xz payload) and an
// initramfs holding the modules Debian builds as modules but a VM needs (virtio, ext4, 9p).
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ProgressFn } from '../../rootfs/recipe.js';
import { type CpioEntry, cpioDir, cpioFile, cpioSymlink, gzipCpio } from './cpio.js';
import { readModuleDepends } from './modinfo.js';
import { wrennInitFile } from './wrenn-init-files.js';

const run = promisify(execFile);

export const KERNEL_META_PACKAGE = 'linux-image-amd64';
/**
 * Modules the guest needs, in addition to their dependencies (crc32c is requested by ext4 at mount
 * time; 9p and its virtio transport mount QEMU's volume exports).
 */
export const GUEST_MODULES = [
  'crc32c_generic',
  'virtio_pci',
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'ext4',
  '9pnet_virtio',
  '9p',
];
/** Beside the initramfs: the module list it was built with (another list rebuilds it). */
const MODULES_FILE = 'initrd.modules';

export interface GuestKernel {
  version: string; // e.g. 6.1.0-56-amd64
  bzImage: string;
  vmlinux: string;
  initrd: string;
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** The concrete linux-image-<ver> package the meta package points at, from the host's apt lists. */
async function resolveKernelPackage(): Promise<string> {
  const { stdout } = await run('apt-cache', ['depends', KERNEL_META_PACKAGE]).catch((err: Error) => {
    throw new Error(
      `apt-cache depends ${KERNEL_META_PACKAGE} failed (${err.message}); run apt-get update, this needs Debian's package lists`,
    );
  });
  const m = /Depends:\s*(linux-image-\d\S*)/.exec(stdout);
  if (!m?.[1]) throw new Error(`cannot find the kernel package ${KERNEL_META_PACKAGE} depends on:\n${stdout}`);
  return m[1];
}

/** Finds the xz stream inside a bzImage and decompresses it into an ELF vmlinux. */
export async function extractVmlinux(bzImage: string, out: string): Promise<void> {
  const img = await readFile(bzImage);
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  for (let at = img.indexOf(magic); at >= 0; at = img.indexOf(magic, at + 1)) {
    const tmp = `${out}.tmp`;
    const xz = spawn('xz', ['-dc', '--single-stream'], { stdio: ['pipe', 'pipe', 'ignore'] });
    xz.stdin.on('error', () => {});
    xz.stdin.end(img.subarray(at));
    const exited = new Promise<number | null>((resolve) => {
      xz.on('error', () => resolve(-1));
      xz.on('close', (code) => resolve(code));
    });
    const written = pipeline(xz.stdout, createWriteStream(tmp)).then(
      () => true,
      () => false,
    );
    const ok = (await exited) === 0 && (await written);
    if (ok) {
      const fh = await open(tmp, 'r');
      const head = Buffer.alloc(4);
      await fh.read(head, 0, 4, 0);
      await fh.close();
      if (head.readUInt32BE(0) === 0x7f454c46) return rename(tmp, out);
    }
    await rm(tmp, { force: true });
  }
  throw new Error(`no xz-compressed ELF kernel found in ${bzImage} (is xz-utils installed? is it an x86 bzImage?)`);
}

/** Module names in load order (dependencies first) with their .ko paths. */
async function moduleLoadOrder(modulesDir: string, wanted: string[]): Promise<{ name: string; path: string }[]> {
  const byName = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ko')) byName.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  await walk(join(modulesDir, 'kernel'));
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, chain: string[]): Promise<void> => {
    if (seen.has(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const path = byName.get(name);
    if (!path) throw new Error(`kernel module ${name} not found under ${modulesDir}`);
    for (const dep of await readModuleDepends(path)) await visit(dep, [...chain, name]);
    seen.add(name);
    order.push({ name, path });
  };
  for (const w of wanted) await visit(w, []);
  return order;
}

async function buildInitramfs(modulesDir: string, out: string): Promise<number> {
  const mods = await moduleLoadOrder(modulesDir, GUEST_MODULES);
  const entries: CpioEntry[] = [
    cpioDir('bin'),
    cpioDir('dev'),
    cpioDir('proc'),
    cpioDir('sys'),
    cpioDir('newroot'),
    cpioDir('modules'),
  ];
  entries.push(cpioFile('bin/busybox', await readFile('/bin/busybox'), 0o755), cpioSymlink('bin/sh', 'busybox'));
  entries.push(cpioFile('init', await wrennInitFile('initramfs-init.sh'), 0o755));
  for (const m of mods) entries.push(cpioFile(`modules/${m.name}.ko`, await readFile(m.path)));
  entries.push(cpioFile('modules/order', Buffer.from(`${mods.map((m) => m.name).join('\n')}\n`)));
  await writeFile(`${out}.tmp`, gzipCpio(entries));
  await rename(`${out}.tmp`, out);
  return mods.length;
}

/**
 * The guest kernel, downloaded and prepared on first use under <dataDir>/kernels/<version>/.
 * Needs apt-get (with Debian's package lists), dpkg-deb, xz and busybox-static on the host.
 */
export function ensureGuestKernel(dataDir: string, onProgress: ProgressFn = () => {}): Promise<GuestKernel> {
  // One preparation per data dir at a time: two VMs created at once would write the same files.
  const running = preparing.get(dataDir);
  if (running) return running;
  const p = prepareGuestKernel(dataDir, onProgress).finally(() => preparing.delete(dataDir));
  preparing.set(dataDir, p);
  return p;
}

const preparing = new Map<string, Promise<GuestKernel>>();

async function prepareGuestKernel(dataDir: string, onProgress: ProgressFn): Promise<GuestKernel> {
  const root = join(dataDir, 'kernels');
  await mkdir(root, { recursive: true });
  const pkg = await resolveKernelPackage();
  const version = pkg.replace(/^linux-image-/, '');
  const dir = join(root, version);
  const k: GuestKernel = {
    version,
    bzImage: join(dir, 'bzImage'),
    vmlinux: join(dir, 'vmlinux'),
    initrd: join(dir, 'initrd.img'),
  };
  const modules = `${GUEST_MODULES.join('\n')}\n`;
  const sameModules = (await readFile(join(dir, MODULES_FILE), 'utf8').catch(() => '')) === modules;
  if (sameModules && (await exists(k.bzImage)) && (await exists(k.vmlinux)) && (await exists(k.initrd))) return k;
  const work = join(root, `.build-${version}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    onProgress(`kernel: downloading ${pkg} (not installed on the host)`);
    // The sandbox user _apt cannot write into our cache dir; the download is checked by apt anyway.
    await run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', pkg], { cwd: work }).catch(
      (err: Error) => {
        throw new Error(`apt-get download ${pkg} failed: ${err.message}`);
      },
    );
    const deb = (await readdir(work)).find((n) => n.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${work}`);
    onProgress(`kernel: unpacking ${deb}`);
    await run('dpkg-deb', ['-x', join(work, deb), join(work, 'x')]);
    await mkdir(dir, { recursive: true });
    await copyFile(join(work, 'x/boot', `vmlinuz-${version}`), `${k.bzImage}.tmp`);
    await copyFile(join(work, 'x/boot', `config-${version}`), join(dir, 'config'));
    onProgress('kernel: extracting vmlinux (for Firecracker) from the bzImage');
    await extractVmlinux(`${k.bzImage}.tmp`, k.vmlinux);
    onProgress(`kernel: building the initramfs (${GUEST_MODULES.join(', ')} and their dependencies)`);
    const n = await buildInitramfs(join(work, 'x/lib/modules', version), k.initrd);
    await writeFile(join(dir, MODULES_FILE), modules);
    onProgress(`kernel: ${version} ready (${n} modules in the initramfs)`);
    await rename(`${k.bzImage}.tmp`, k.bzImage);
    return k;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
