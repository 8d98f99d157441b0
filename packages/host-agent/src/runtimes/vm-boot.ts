// What booting and tearing down a capsule VM means for either VMM (QEMU, Firecracker), written
// once: the spec check, the boot inputs (guest kernel + initramfs and the template's root disk,
// plus a snapshot template's frozen shape), the guest kernel command line, a fresh capsule
// directory, the TAP, the teardown once the VMM is gone, the capsule's record and the sweep of
// capsules no record names. The VMM process itself (kill, envd wait, exit watch, usage) is
// vm-process.ts. Each runtime keeps only what its VMM does differently (start, pause, restore).
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createTap, guestIpParam, removeTap } from '../network/tap.js';
import type { ProgressFn } from '../rootfs/recipe.js';
import { TemplateStore } from '../rootfs/template-store.js';
import { buildVmImages, type VmImages } from '../vm/images/index.js';
import type { CapsuleSpec, RuntimeHandle } from './runtime.js';
import { writeSnapshotTemplate } from './vm-snapshot-template.js';

export const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/** Where the capsule's network (made by the network layer) is: namespace name and guest address. */
export interface VmNetwork {
  netns: string;
  capsuleIp: string;
}

/** The options every VM runtime takes that the shared boot steps use. */
export interface VmRuntimeOptions {
  /** WRENN_DIR: kernels/, images/<template>/, sandboxes/<id>/. */
  dataDir: string;
  /** Default: <dataDir>/images. */
  store?: TemplateStore;
  onProgress?: ProgressFn;
}

/** What one VM runtime tells the shared boot steps about its VMM. */
export interface VmmFacts {
  runtime: 'qemu' | 'firecracker';
  /** Longest capsule id (it ends up in paths and process names). */
  maxIdLength: number;
  maxVcpus: number;
  /** Said after the vCPU range when it is refused (e.g. whose limit it is). */
  vcpusNote?: string;
  /** Kernel arguments this VMM's devices need, beside the shared ones. */
  kernelArgs: string[];
  /** In <dataDir>/sandboxes/<id>/: the runtime's record of the capsule (its RuntimeHandle). */
  handleFile: string;
  /** In a snapshot template: the frozen VM's shape (vCPUs, memory), next to its rootfs. */
  snapshotInfoFile: string;
}

export class VmBoot {
  readonly store: TemplateStore;
  private readonly onProgress: ProgressFn;
  private readonly idRe: RegExp;

  readonly dataDir: string;

  constructor(
    opts: VmRuntimeOptions | undefined,
    readonly o: VmmFacts,
  ) {
    if (!opts?.dataDir) throw new Error(`the ${o.runtime} runtime needs dataDir (WRENN_DIR, e.g. /var/lib/wrenn)`);
    this.dataDir = opts.dataDir;
    this.store = opts.store ?? new TemplateStore({ imagesDir: join(opts.dataDir, 'images') });
    this.onProgress = opts.onProgress ?? (() => {});
    this.idRe = new RegExp(`^[a-z0-9][a-z0-9-]{0,${o.maxIdLength - 1}}$`);
  }

  /** Checks what a VM capsule needs from its spec; returns its network. */
  check(spec: CapsuleSpec): VmNetwork {
    if (!spec || !this.idRe.test(spec.id)) throw new Error(`invalid capsule id ${JSON.stringify(spec?.id)}`);
    const { maxVcpus, vcpusNote } = this.o;
    if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > maxVcpus)
      throw new Error(`vcpus must be 1-${maxVcpus}${vcpusNote ? ` ${vcpusNote}` : ''}, got ${spec.vcpus}`);
    if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 128)
      throw new Error(`memoryMb must be an integer >= 128 (the guest runs node), got ${spec.memoryMb}`);
    const netnsPath = spec.network?.netnsPath;
    const capsuleIp = spec.network?.capsuleIp;
    if (!netnsPath || !capsuleIp)
      throw new Error(
        `the ${this.o.runtime} runtime needs spec.network (netnsPath and capsuleIp) from the network layer`,
      );
    return { netns: basename(netnsPath), capsuleIp };
  }

  /** Builds (once) the guest kernel and the template's root disk. */
  images(template: string): Promise<VmImages> {
    return buildVmImages({ dataDir: this.dataDir, template, store: this.store, onProgress: this.onProgress });
  }

  /**
   * The template's directory and, for a snapshot template, the frozen VM's shape written beside
   * its rootfs: a capsule of it starts from that memory, with its vCPUs and memory size.
   */
  async frozenTemplate<Info>(template: string): Promise<{ templateDir: string; frozen: Info | undefined }> {
    const templateDir = this.store.templateDir(template);
    const frozen = await readFile(join(templateDir, this.o.snapshotInfoFile), 'utf8').then(
      (t) => JSON.parse(t) as Info,
      () => undefined,
    );
    return { templateDir, frozen };
  }

  /** The capsule's directory on the host: console log, sockets, the runtime's record. */
  sandboxDir(id: string): string {
    return join(this.dataDir, 'sandboxes', id);
  }

  /** Empties (or makes) the capsule's directories: what an earlier capsule of this id left goes. */
  async freshDirs(...dirs: string[]): Promise<void> {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    await Promise.all(dirs.map((d) => mkdir(d, { recursive: true })));
  }

  /**
   * The guest kernel command line: serial console, this VMM's device arguments, root disk, eth0
   * addressed like every capsule's (ip=), the capsule's identity for the guest's init, and
   * `guestArgs` (extra settings for the init).
   */
  kernelArgs(spec: CapsuleSpec, guestArgs: string[] = []): string {
    return [
      'console=ttyS0',
      'panic=1',
      ...this.o.kernelArgs,
      'root=/dev/vda',
      'rw',
      'quiet',
      'loglevel=3',
      `ip=${guestIpParam(spec.id)}`,
      `wrenn.id=${spec.metadata?.WRENN_SANDBOX_ID ?? spec.id}`,
      `wrenn.template=${spec.metadata?.WRENN_TEMPLATE_ID ?? spec.template}`,
      ...guestArgs,
    ].join(' ');
  }

  /**
   * The capsule's volumes as the VMM's extra disks, each with a `wrenn.volume=<disk>:<path>`
   * kernel argument telling the guest's init where to mount it (paths were checked to hold no
   * blank or comma). `by: 'serial'`: the i-th disk gets the serial `wrenn-vol<i>`, by which the
   * init finds it; `by: 'order'` (a VMM without disk serials): the disks follow the root disk in
   * order, so the i-th is the guest's vd<b + i>.
   */
  volumeDisks(
    spec: CapsuleSpec,
    by: 'serial' | 'order' = 'serial',
  ): { disks: { image: string; serial: string }[]; kernelArgs: string[] } {
    const vols = spec.volumes ?? [];
    if (by === 'order' && vols.length > 24) throw new Error(`at most 24 volume disks, got ${vols.length}`);
    const name = (i: number) => (by === 'serial' ? `wrenn-vol${i}` : `vd${String.fromCharCode(98 + i)}`);
    const disks = vols.map((v, i) => ({ image: v.source, serial: name(i) }));
    return { disks, kernelArgs: vols.map((v, i) => `wrenn.volume=${name(i)}:${v.path}`) };
  }

  /**
   * The capsule's volumes as 9p exports: the i-th host directory gets the mount tag `wrenn-vol<i>`,
   * and a `wrenn.share=<tag>:<path>` kernel argument tells the guest's init where to mount it.
   */
  volumeShares(spec: CapsuleSpec): { shares: { dir: string; tag: string }[]; kernelArgs: string[] } {
    const vols = spec.volumes ?? [];
    const shares = vols.map((v, i) => ({ dir: v.source, tag: `wrenn-vol${i}` }));
    return { shares, kernelArgs: vols.map((v, i) => `wrenn.share=wrenn-vol${i}:${v.path}`) };
  }

  /** The TAP the VMM opens, inside the capsule's network namespace. */
  plugTap(net: VmNetwork): Promise<void> {
    return createTap(net.netns, net.capsuleIp);
  }

  /**
   * What is left once the VMM is gone: its TAP (unless the namespace already went with the
   * capsule's network, taking the TAP along), its disk when the runtime keeps one outside the
   * capsule's directory (`releaseDisk`; when that fails the directories stay, so a later destroy
   * or cleanupStale tries again), then the capsule's directories.
   */
  async teardown(net: Partial<VmNetwork>, dirs: string[], releaseDisk?: () => Promise<void>): Promise<void> {
    if (net.netns && net.capsuleIp && (await exists(join('/run/netns', net.netns))))
      await removeTap(net.netns, net.capsuleIp).catch(() => {});
    await releaseDisk?.();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }

  /**
   * Writes template `name` from the capsule (writeSnapshotTemplate): `fill` puts the disk, device
   * state and memory into the template's directory and may return more of the VM's shape.
   */
  snapshotTemplate(
    name: string,
    handle: RuntimeHandle,
    fill: (tmp: string) => Promise<Record<string, unknown> | undefined>,
  ): Promise<void> {
    const { template, vcpus, memoryMb } = handle.state as { template: string; vcpus: number; memoryMb: number };
    const { store } = this;
    const { runtime, snapshotInfoFile: infoFile } = this.o;
    return writeSnapshotTemplate({
      store,
      name,
      runtime,
      infoFile,
      from: { id: handle.id, template, vcpus, memoryMb },
      fill,
    });
  }

  /** Writes the runtime's record of the capsule into its directory (read back by sweepStale). */
  saveHandle(handle: RuntimeHandle): Promise<void> {
    return writeFile(join((handle.state as { dir: string }).dir, this.o.handleFile), JSON.stringify(handle));
  }

  /**
   * Destroys every capsule of this runtime whose record no longer names a known capsule: what a
   * crash between create and the manager's record left.
   */
  async sweepStale(knownIds: ReadonlySet<string>, destroy: (handle: RuntimeHandle) => Promise<void>): Promise<void> {
    const root = join(this.dataDir, 'sandboxes');
    for (const id of await readdir(root).catch(() => [] as string[])) {
      if (knownIds.has(id)) continue;
      const text = await readFile(join(root, id, this.o.handleFile), 'utf8').catch(() => '');
      if (!text) continue;
      const handle = JSON.parse(text) as RuntimeHandle;
      if (handle.runtime !== this.o.runtime || handle.id !== id) continue;
      await destroy(handle);
    }
  }
}
