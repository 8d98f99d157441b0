// The Firecracker runtime: each capsule is a microVM booted from the shared guest kernel (vmlinux
// + initramfs) and a copy-on-write disk over its template's rootfs.ext4 (vm/disks: a device-mapper
// snapshot, or a reflink/sparse copy where the kernel has no device-mapper), with eth0 on tap0 inside
// the capsule's network namespace. pause = Full snapshot the first time, Diff (dirty pages only)
// after, each a new memory generation (snapshot/header.ts), then the VMM is killed and its memory
// freed; resume = a fresh VMM loading the snapshot with its memory served lazily by the UFFD
// handler (packages/native) from the generation chain. Needs /dev/kvm and a firecracker binary.
// Volumes (no 9p or virtio-fs in Firecracker): each volume's ext4 image is an extra disk the VM
// holds alone (VolumeStore.attachToVm shifts its owners), linked into the capsule's directory so
// the VMM opens it at a fixed path; the guest's init mounts vdb, vdc, ... in order.
import { mkdir, readdir, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { UffdHandler } from '@wrenn/native';
import { InvalidArgumentError } from '@wrenn/protocol';
import { TAP_IFNAME } from '../../network/tap.js';
import { HEADER_FILE } from '../../snapshot/header.js';
import { type CowDiskKind, type CowDisks, createCowDisks, flattenDisk } from '../../vm/disks/index.js';
import { ROOTFS_IMAGE, type VmImages } from '../../vm/images/index.js';
import type { CapsuleRuntime, CapsuleSpec, CapsuleStats, PauseResult, RuntimeHandle } from '../runtime.js';
import { exists, VmBoot, type VmmFacts, type VmRuntimeOptions } from '../vm-boot.js';
import { macFor, vmmStats, waitVmReady, watchVmmExit } from '../vm-process.js';
import type { SnapshotInfo } from '../vm-snapshot-template.js';
import { FirecrackerClient } from './api-client.js';
import {
  copyCollapsed,
  nextSnapshot,
  recordSnapshot,
  serveMemory,
  sparseCopy,
  VMSTATE_FILE,
} from './memory-snapshot.js';
import { configureAndStart, pauseToSnapshot, restoreWithUffd } from './sequences.js';
import {
  API_SOCKET,
  binaryVersion,
  checkSupportedVersion,
  isOurVmm,
  killVmm,
  launchVmm,
  listVmms,
  UFFD_SOCKET,
  type Vmm,
  vmmId,
} from './vmm-process.js';

/** dataDir (also holds snapshots/<id>/ here), store and onProgress: see VmRuntimeOptions (vm-boot.ts). */
export interface FirecrackerRuntimeOptions extends VmRuntimeOptions {
  /** The firecracker binary (default: `firecracker` on PATH). */
  firecrackerBinary?: string;
  /** How long a boot or resume may take until envd answers (default 30 s). */
  readyTimeoutMs?: number;
  /** How capsule disks are made (default: device-mapper where the kernel has it, else reflink, else sparse copy). */
  diskKind?: CowDiskKind;
}

/** What the runtime keeps in RuntimeHandle.state (JSON). */
export interface FirecrackerState {
  [key: string]: unknown;
  /** The capsule's directory on the host: rootfs.ext4, API and UFFD sockets, console.log. */
  dir: string;
  /** Memory generations, header and vmstate of the latest pause. */
  snapDir: string;
  pid: number;
  netns: string;
  capsuleIp: string;
  template: string;
  vcpus: number;
  memoryMb: number;
  version: string;
  /** 'running' | 'frozen' (vCPUs paused in place) | 'saved' (snapshot on disk, no VMM). */
  phase: 'running' | 'frozen' | 'saved';
  /** The next memory snapshot must be Full (no chain yet, or Firecracker's dirty log was reset by a template snapshot). */
  forceFull: boolean;
  /** The MMDS contents: Firecracker does not keep them in a snapshot, so every restore puts them again. */
  metadata: Record<string, string>;
  /**
   * The running VM's memory is served by a UFFD handler inside this agent process: after an agent
   * restart its not-yet-loaded pages can never be served, so the capsule is not re-adopted.
   */
  memoryFromUffd?: boolean;
  /** The capsule's root disk: a device-mapper snapshot device or a copy; <dir>/rootfs.ext4 links to it. */
  disk?: { kind: CowDiskKind; path: string };
  /** The last memory snapshot, reported again when a saved capsule is paused. */
  lastSnapshot?: { kind: 'full' | 'diff'; bytes: number };
  /** Volume images attached as extra disks (in the capsule's directory: volume<i>.img links to each). */
  volumeImages?: string[];
}

/** In a snapshot template's directory: the frozen VM's shape, next to rootfs.ext4, vmstate and its memory. */
const FC_SNAPSHOT_FILE = 'firecracker-snapshot.json';
const MiB = 1024 ** 2;

interface FcSnapshotInfo extends SnapshotInfo {
  firecrackerVersion: string;
}

/** What the shared VM boot steps (vm-boot.ts) need to know of this VMM. */
const FIRECRACKER_VMM: VmmFacts = {
  runtime: 'firecracker',
  maxIdLength: 51, // the API and UFFD socket paths (vmm-process.ts)
  maxVcpus: 32,
  vcpusNote: "(Firecracker's limit)",
  // No PCI: virtio-mmio devices found through ACPI; no i8042 keyboard controller to probe.
  kernelArgs: ['reboot=k', 'pci=off', 'i8042.noaux', 'i8042.nomux', 'i8042.nopnp', 'i8042.dumbkbd'],
  handleFile: 'firecracker.json',
  snapshotInfoFile: FC_SNAPSHOT_FILE,
};

/** In the capsule's directory (the VMM's fixed path): a link to the i-th volume's image. */
const volumeLink = (i: number) => `volume${i}.img`;

export class FirecrackerRuntime implements CapsuleRuntime {
  readonly name = 'firecracker' as const;
  readonly pauseModes = ['memory-snapshot', 'freeze'] as const;
  readonly volumeMounts = 'block' as const;
  readonly binary: string;
  /** Where each VMM sees its capsule's directory (bound there in its own mount namespace). */
  readonly vmmDir: string;
  private readonly boot: VmBoot;
  private versionOnce?: Promise<string>;
  private disksOnce?: Promise<CowDisks>;
  /**
   * UFFD handlers serving restored VMs, by capsule id. A userfaultfd does not tell its handler
   * when the VMM exits, so each watches the VMM's exit (a pidfd in the event loop: no timer per
   * VM) and stops the handler once it is gone.
   */
  private readonly handlers = new Map<string, { handler: UffdHandler; unwatch?: () => void }>();

  constructor(private readonly opts: FirecrackerRuntimeOptions) {
    this.boot = new VmBoot(opts, FIRECRACKER_VMM);
    this.binary = opts.firecrackerBinary ?? 'firecracker';
    this.vmmDir = join(opts.dataDir, 'vmm');
  }

  /** Capsules whose memory a UFFD handler of this runtime is serving (for diagnostics and tests). */
  servingMemory(): string[] {
    return [...this.handlers.keys()];
  }

  /** The binary's version (`firecracker --version`, once); throws when missing or unsupported. */
  version(): Promise<string> {
    this.versionOnce ??= binaryVersion(this.binary);
    this.versionOnce.catch(() => (this.versionOnce = undefined));
    return this.versionOnce;
  }

  /** The capsules' copy-on-write disks (what this host offers is detected once). */
  disks(): Promise<CowDisks> {
    this.disksOnce ??= createCowDisks({ dataDir: this.opts.dataDir, kind: this.opts.diskKind });
    this.disksOnce.catch(() => (this.disksOnce = undefined));
    return this.disksOnce;
  }

  /** Builds (once) the kernel and the template's root disk. */
  images(template: string): Promise<VmImages> {
    return this.boot.images(template);
  }

  private save(handle: RuntimeHandle): Promise<void> {
    return this.boot.saveHandle(handle);
  }

  async create(spec: CapsuleSpec): Promise<RuntimeHandle> {
    const { netns, capsuleIp } = this.boot.check(spec);
    const [version, images] = await Promise.all([this.version(), this.images(spec.template)]);
    const { templateDir: tdir, frozen } = await this.boot.frozenTemplate<FcSnapshotInfo>(spec.template);
    if (
      frozen &&
      frozen.firecrackerVersion.split('.').slice(0, 2).join('.') !== version.split('.').slice(0, 2).join('.')
    )
      throw new Error(
        `template "${spec.template}" holds a snapshot of Firecracker ${frozen.firecrackerVersion}; this host runs ${version}, which cannot load it`,
      );
    const volumes = this.boot.volumeDisks(spec, 'order');
    // Its memory is a guest that mounted its own disks already and would not mount these.
    if (frozen && volumes.disks.length)
      throw new InvalidArgumentError(
        `template ${spec.template} is a memory snapshot; a capsule of it cannot mount volumes on the firecracker runtime`,
      );
    const dir = this.boot.sandboxDir(spec.id);
    const snapDir = join(this.opts.dataDir, 'snapshots', spec.id);
    await Promise.all([
      this.boot.freshDirs(dir),
      rm(snapDir, { recursive: true, force: true }),
      mkdir(this.vmmDir, { recursive: true }),
    ]);
    const state: FirecrackerState = {
      dir,
      snapDir,
      pid: 0,
      netns,
      capsuleIp,
      template: spec.template,
      // A snapshot template starts from its frozen memory: vCPUs and memory are the snapshot's.
      vcpus: frozen?.vcpus ?? spec.vcpus,
      memoryMb: frozen?.memoryMb ?? spec.memoryMb,
      version,
      phase: 'running',
      forceFull: true,
      metadata: { ...spec.metadata },
      ...(volumes.disks.length ? { volumeImages: volumes.disks.map((d) => d.image) } : {}),
    };
    const handle: RuntimeHandle = { runtime: 'firecracker', id: spec.id, address: capsuleIp, state };
    try {
      // The VMM opens <vmmDir>/rootfs.ext4 (a path its snapshots record): a link to the capsule's disk.
      const disks = await this.disks();
      await disks.release(spec.id); // what an earlier capsule of this id left
      const disk = await disks.create(spec.id, images.rootfs);
      state.disk = { kind: disk.kind, path: disk.path };
      await symlink(disk.path, join(dir, ROOTFS_IMAGE));
      for (const [i, d] of volumes.disks.entries()) await symlink(d.image, join(dir, volumeLink(i)));
      await this.boot.plugTap(state);
      await this.save(handle);
      if (frozen) {
        await this.restore(handle, tdir);
      } else {
        const vmm = await this.launch(handle);
        await configureAndStart(vmm.client, {
          kernel: images.kernel.vmlinux,
          initrd: images.kernel.initrd,
          bootArgs: this.boot.kernelArgs(spec, volumes.kernelArgs),
          rootfs: join(this.vmmDir, ROOTFS_IMAGE),
          volumes: volumes.disks.map((_, i) => join(this.vmmDir, volumeLink(i))),
          tapName: TAP_IFNAME,
          guestMac: macFor(spec.id, 0x46),
          vcpus: state.vcpus,
          memoryMb: state.memoryMb,
          metadata: spec.metadata,
        });
        await this.waitReady(state);
      }
      await this.save(handle);
      return handle;
    } catch (err) {
      await this.destroy(handle).catch(() => {});
      throw err;
    }
  }

  /** Starts a VMM for the capsule and checks that its API speaks the version the binary reported. */
  private async launch(handle: RuntimeHandle): Promise<Vmm> {
    const s = handle.state as FirecrackerState;
    const vmm = await launchVmm({
      binary: this.binary,
      capsuleId: handle.id,
      dir: s.dir,
      vmmDir: this.vmmDir,
      netns: s.netns,
    });
    s.pid = vmm.pid;
    try {
      const apiVersion = await vmm.client.version();
      checkSupportedVersion(apiVersion);
      s.version = apiVersion;
    } catch (err) {
      await killVmm(vmm.pid, handle.id).catch(() => {});
      s.pid = 0;
      throw err;
    }
    return vmm;
  }

  /** Loads the snapshot in `fromDir` (vmstate + memory chain) into a fresh VMM, memory served by UFFD. */
  private async restore(handle: RuntimeHandle, fromDir: string): Promise<void> {
    const s = handle.state as FirecrackerState;
    await this.stopHandler(handle.id);
    const handler = await serveMemory(fromDir, join(s.dir, UFFD_SOCKET));
    const entry: { handler: UffdHandler; unwatch?: () => void } = { handler };
    this.handlers.set(handle.id, entry);
    try {
      // Firecracker reads vmstate at a path it can see: the capsule's directory.
      await sparseCopy(join(fromDir, VMSTATE_FILE), join(s.dir, VMSTATE_FILE));
      const vmm = await this.launch(handle);
      await restoreWithUffd(vmm.client, {
        snapshotPath: join(this.vmmDir, VMSTATE_FILE),
        uffdSocket: join(this.vmmDir, UFFD_SOCKET),
      });
      await vmm.client.putMmds({ ...s.metadata });
      await Promise.race([
        handler.connected,
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error('Firecracker loaded the snapshot but never connected to the UFFD handler')),
            10_000,
          ).unref(),
        ),
      ]);
      await rm(join(s.dir, VMSTATE_FILE), { force: true });
      // The memory server ends with its VMM: a pidfd watch, not a timer per capsule.
      const sock = join(this.vmmDir, API_SOCKET);
      entry.unwatch = watchVmmExit(
        s,
        'Firecracker',
        (args) => args.includes(sock) && args.includes(vmmId(handle.id)),
        () => {
          if (this.handlers.get(handle.id) === entry) void this.stopHandler(handle.id);
        },
      );
      s.phase = 'running';
      s.memoryFromUffd = true;
      await this.waitReady(s);
    } catch (err) {
      await killVmm(s.pid, handle.id).catch(() => {});
      s.pid = 0;
      await this.stopHandler(handle.id);
      throw err;
    }
  }

  private async stopHandler(id: string): Promise<void> {
    const h = this.handlers.get(id);
    if (!h) return;
    this.handlers.delete(id);
    h.unwatch?.();
    await h.handler.stop().catch(() => {});
  }

  private async waitReady(s: FirecrackerState): Promise<void> {
    await waitVmReady(s, this.opts.readyTimeoutMs ?? 30_000, 'the microVM');
  }

  private client(s: FirecrackerState): FirecrackerClient {
    return new FirecrackerClient(join(s.dir, API_SOCKET));
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    const s = handle.state as FirecrackerState;
    // The VMM first: it holds the disk and the TAP open.
    if (s.pid && (await isOurVmm(s.pid, handle.id, this.vmmDir))) await killVmm(s.pid, handle.id);
    s.pid = 0;
    await this.stopHandler(handle.id);
    // The disk once the VMM is gone (a device still open cannot be removed).
    const disks = await this.disks();
    await this.boot.teardown(s, [s.dir, s.snapDir], () => disks.release(handle.id));
  }

  async pause(handle: RuntimeHandle, mode: 'freeze' | 'hibernate' | 'memory-snapshot'): Promise<PauseResult> {
    const s = handle.state as FirecrackerState;
    if (s.phase === 'saved') return this.savedResult(s);
    const fc = this.client(s);
    if (mode === 'freeze') {
      if (s.phase === 'running') await fc.pause();
      s.phase = 'frozen';
      await this.save(handle);
      return { keeps: 'memory and processes (vCPUs paused; the microVM keeps its memory)', processesKept: true };
    }
    const next = await nextSnapshot(s.snapDir, s.forceFull);
    const paths = { snapshotPath: join(this.vmmDir, next.vmstateName), memFilePath: join(this.vmmDir, next.memName) };
    const kind = next.kind === 'full' ? 'Full' : 'Diff';
    if (s.phase === 'frozen')
      await fc.createSnapshot({ ...paths, type: kind }); // vCPUs already paused
    else await pauseToSnapshot(fc, { ...paths, firstGeneration: next.kind === 'full' });
    // Memory is on disk: the VMM goes, and with it the guest's memory; then the UFFD handler it used.
    await killVmm(s.pid, handle.id);
    s.pid = 0;
    await this.stopHandler(handle.id);
    await Promise.all([API_SOCKET, UFFD_SOCKET].map((f) => rm(join(s.dir, f), { force: true })));
    const rec = await recordSnapshot(s.dir, s.snapDir, next, s.memoryMb * MiB);
    s.phase = 'saved';
    s.forceFull = false;
    s.memoryFromUffd = false;
    s.lastSnapshot = { kind: kind === 'Full' ? 'full' : 'diff', bytes: rec.bytes };
    await this.save(handle);
    return this.savedResult(s);
  }

  private savedResult(s: FirecrackerState): PauseResult {
    const snap = s.lastSnapshot ?? { kind: 'full' as const, bytes: 0 };
    const what =
      snap.kind === 'full' ? 'full memory snapshot' : 'diff snapshot of the pages dirtied since the last one';
    return {
      keeps: `memory and processes (${what}, ${Math.round(snap.bytes / MiB)} MiB on disk; Firecracker stopped, its memory freed)`,
      processesKept: true,
      snapshot: snap,
    };
  }

  async resume(handle: RuntimeHandle): Promise<RuntimeHandle> {
    const s = handle.state as FirecrackerState;
    if (s.phase === 'running') return handle;
    if (s.phase === 'frozen') {
      await this.client(s).resume();
      s.phase = 'running';
      await this.save(handle);
      return handle;
    }
    if (!(await exists(join(s.snapDir, HEADER_FILE))) || !(await exists(join(s.snapDir, VMSTATE_FILE))))
      throw new Error(`the memory snapshot of ${handle.id} in ${s.snapDir} is missing; the capsule cannot resume`);
    await (await this.disks()).ensure(handle.id); // its snapshot device is rebuilt if a reboot removed it
    await this.boot.plugTap(s);
    await this.restore(handle, s.snapDir);
    await this.save(handle);
    return handle;
  }

  /**
   * Writes template `name` from the capsule: its disk (rootfs.ext4), its machine state and its
   * memory collapsed into one Full generation, so new capsules start with its processes running.
   * A running capsule is paused for the copy and continues afterwards.
   */
  async snapshot(handle: RuntimeHandle, name: string): Promise<void> {
    const s = handle.state as FirecrackerState;
    await this.boot.snapshotTemplate(name, handle, async (tmp) => {
      await this.writeTemplateFiles(handle, tmp);
      return { firecrackerVersion: s.version };
    });
  }

  /** The capsule's disk, machine state and memory (collapsed into one Full generation) in `tmp`. */
  private async writeTemplateFiles(handle: RuntimeHandle, tmp: string): Promise<void> {
    const s = handle.state as FirecrackerState;
    if (s.phase === 'saved') {
      await copyCollapsed(s.snapDir, tmp);
      await flattenDisk(join(s.dir, ROOTFS_IMAGE), join(tmp, ROOTFS_IMAGE));
      return;
    }
    const fc = this.client(s);
    const next = await nextSnapshot(tmp, true);
    if (s.phase === 'running') await fc.pause();
    try {
      await fc.createSnapshot({
        snapshotPath: join(this.vmmDir, next.vmstateName),
        memFilePath: join(this.vmmDir, next.memName),
        type: 'Full',
      });
      // The vCPUs are paused: the disk copy matches the memory.
      await flattenDisk(join(s.dir, ROOTFS_IMAGE), join(tmp, ROOTFS_IMAGE));
    } finally {
      if (s.phase === 'running') await fc.resume().catch(() => {});
    }
    // Firecracker restarts dirty-page tracking with every snapshot: the capsule's next pause is Full.
    s.forceFull = true;
    await this.save(handle);
    await recordSnapshot(s.dir, tmp, next, s.memoryMb * MiB);
  }

  watchExit(handle: RuntimeHandle, onExit: (reason: string) => void): () => void {
    const s = handle.state as FirecrackerState;
    if (s.phase === 'saved') return () => undefined; // no process while saved to disk
    const sock = join(this.vmmDir, API_SOCKET);
    return watchVmmExit(s, 'Firecracker', (args) => args.includes(sock) && args.includes(vmmId(handle.id)), onExit);
  }

  async isAlive(handle: RuntimeHandle): Promise<boolean> {
    const s = handle.state as FirecrackerState;
    if (s.phase === 'saved') return exists(join(s.snapDir, HEADER_FILE));
    if (s.memoryFromUffd && !this.handlers.has(handle.id)) return false; // its memory server died with an earlier agent
    return isOurVmm(s.pid, handle.id, this.vmmDir);
  }

  async stats(handle: RuntimeHandle): Promise<CapsuleStats> {
    const s = handle.state as FirecrackerState;
    const disk = await stat(join(s.dir, ROOTFS_IMAGE)).catch(() => undefined);
    return vmmStats(s.phase === 'saved' ? 0 : s.pid, {
      memoryMb: s.memoryMb,
      diskUsedBytes: (await (await this.disks()).usedBytes(handle.id)) || (disk ? disk.blocks * 512 : 0),
    });
  }

  async cleanupStale(knownIds: ReadonlySet<string>): Promise<void> {
    for (const id of [...this.handlers.keys()]) if (!knownIds.has(id)) await this.stopHandler(id);
    // VMMs of ours (started with this data dir's VMM path) that no capsule record names.
    for (const [id, pid] of await listVmms(this.vmmDir)) {
      if (!knownIds.has(id)) await killVmm(pid, id).catch(() => {});
    }
    await this.boot.sweepStale(knownIds, (h) => this.destroy(h));
    const snaps = join(this.opts.dataDir, 'snapshots');
    for (const id of await readdir(snaps).catch(() => [] as string[])) {
      // Only directories holding a Firecracker snapshot: other runtimes keep their own state here.
      if (
        !knownIds.has(id) &&
        !(await exists(this.boot.sandboxDir(id))) &&
        (await exists(join(snaps, id, VMSTATE_FILE)))
      )
        await rm(join(snaps, id), { recursive: true, force: true });
    }
    // Disks, snapshot devices and loop devices no capsule uses (a crash mid-create, a lost directory).
    const report = await (await this.disks()).cleanupStale(knownIds);
    if (report.errors.length)
      throw new Error(
        `stale VM disks could not all be removed (they stay for the next start): ${report.errors.join('; ')}`,
      );
  }
}

export function createFirecrackerRuntime(opts: FirecrackerRuntimeOptions): FirecrackerRuntime {
  return new FirecrackerRuntime(opts);
}
