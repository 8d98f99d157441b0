// The QEMU runtime: each capsule is a VM booted from the shared guest kernel + initramfs and a
// copy-on-write qcow2 disk over its template's rootfs.ext4, with its NIC on tap0 inside the
// capsule's network namespace. KVM when it can run a vCPU here, software emulation otherwise.
// Guest RAM is a file (memory-backend-file, share=on) and migrations skip it (x-ignore-shared), so
// pause = stop + device state to a small file + quit, then the RAM file becomes the next memory
// generation (memory-generations.ts: Full the first time, later a Diff of the changed blocks) and
// is removed (memory freed). resume = the RAM file rebuilt from the chain + a new QEMU with the
// device state as its incoming migration.
// Volumes are 9p exports of their host directories (VolumeStore.exportForVm), shared with namespace
// capsules and other VMs at once. QEMU refuses to migrate a VM while a 9p export is mounted in it,
// so such a VM pauses by freezing (vCPUs stopped, memory kept in QEMU) and is not snapshotted.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '@wrenn/protocol';
import { GUEST_IP } from '../../network/tap.js';
import { addGeneration, generationFile, materializeChain, newBuildId, sparseCopy } from '../../snapshot/index.js';
import { ROOTFS_IMAGE, type VmImages } from '../../vm/images/index.js';
import type { CapsuleRuntime, CapsuleSpec, CapsuleStats, PauseResult, RuntimeHandle } from '../runtime.js';
import { exists, VmBoot, type VmmFacts, type VmRuntimeOptions } from '../vm-boot.js';
import {
  consoleTail,
  killVmmProcess,
  macFor,
  pidAlive,
  vmmStats,
  waitGone,
  waitVmReady,
  watchVmmExit,
} from '../vm-process.js';
import type { SnapshotInfo } from '../vm-snapshot-template.js';
import { type AccelChoice, detectAccel } from './accel.js';
import { diskBytes, hasChain, type SavedGeneration, saveGeneration } from './memory-generations.js';
import { QmpClient } from './qmp.js';

/** dataDir, store and onProgress: see VmRuntimeOptions (vm-boot.ts). */
export interface QemuRuntimeOptions extends VmRuntimeOptions {
  qemuBinary?: string;
  qemuImgBinary?: string;
  /** 'auto' (default) tries KVM and falls back to software emulation. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** How long a boot or resume may take until envd answers (default 120 s: TCG is slow). */
  readyTimeoutMs?: number;
  /** Flags for the guest's node running envd; default --jitless under TCG, none under KVM. */
  guestNodeFlags?: string[];
}

/** What the runtime keeps in RuntimeHandle.state (JSON). */
export interface QemuState {
  [key: string]: unknown;
  dir: string;
  pid: number;
  netns: string;
  capsuleIp: string;
  accel: 'kvm' | 'tcg';
  template: string;
  vcpus: number;
  memoryMb: number;
  kernel: string;
  initrd: string;
  disk: string;
  cmdline: string;
  mac: string;
  /** 'running' | 'frozen' (vCPUs stopped in place) | 'saved' (memory on disk, no process). */
  phase: 'running' | 'frozen' | 'saved';
  /** Device state (migration stream without RAM) while saved; before file-backed RAM: the whole stream. */
  statePath: string;
  /** The guest RAM file QEMU maps while it runs (absent in states written before file-backed RAM). */
  memoryPath?: string;
  /** Memory generations + header (src/snapshot): the RAM as of the last pause, base of the next Diff. */
  chainDir?: string;
  /** What the last memory-snapshot pause wrote. */
  lastSnapshot?: PauseResult;
  /** Saved, but the RAM file is not in the chain yet (writing the generation failed): it is the memory. */
  ramNotInChain?: boolean;
  /** Volume images opened as extra virtio disks (agents before 9p volumes), found by the guest through their serial. */
  volumeDisks?: { image: string; serial: string }[];
  /** Volume directories exported over virtio-9p, mounted by the guest by their tag. */
  volumeShares?: { dir: string; tag: string }[];
}

/** In a snapshot template's directory: the frozen VM (machine shape, device state, memory chain) next to rootfs.ext4. */
const VM_SNAPSHOT_FILE = 'vm-snapshot.json';
const VM_DEVICE_FILE = 'vm-device.mig';
const VM_MEMORY_DIR = 'vm-memory';
/** Templates written before file-backed RAM: one migration stream with the RAM in it. */
const LEGACY_MEMORY_FILE = 'memory.mig';
/** The RAM backend's id: the same RAM block name as QEMU's default (pc.ram), so older streams still load. */
const RAM_ID = 'pc.ram';

const SAFE_PATH = /^[A-Za-z0-9/_.+=@-]+$/; // paths go into QEMU options (no commas) and an exec: shell line

function runTool(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (out += b));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error(`${cmd} is not installed: install qemu-system-x86 and qemu-utils`) : e),
    );
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

/** What the shared VM boot steps (vm-boot.ts) need to know of this VMM. */
const QEMU_VMM: VmmFacts = {
  runtime: 'qemu',
  maxIdLength: 63,
  maxVcpus: 64,
  kernelArgs: [],
  handleFile: 'qemu.json',
  snapshotInfoFile: VM_SNAPSHOT_FILE,
};

export class QemuRuntime implements CapsuleRuntime {
  readonly name = 'qemu' as const;
  readonly pauseModes = ['memory-snapshot', 'freeze'] as const;
  readonly volumeMounts = '9p' as const;
  private readonly qemu: string;
  private readonly qemuImg: string;
  private readonly boot: VmBoot;

  constructor(private readonly opts: QemuRuntimeOptions) {
    this.boot = new VmBoot(opts, QEMU_VMM);
    for (const f of opts.guestNodeFlags ?? []) {
      if (!/^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$/.test(f))
        throw new Error(`guest node flag ${JSON.stringify(f)} is not a plain --flag[=value]`);
    }
    if (!SAFE_PATH.test(opts.dataDir))
      throw new Error(
        `dataDir ${JSON.stringify(opts.dataDir)} has characters the qemu runtime cannot quote; use [A-Za-z0-9/_.-]`,
      );
    this.qemu = opts.qemuBinary ?? 'qemu-system-x86_64';
    this.qemuImg = opts.qemuImgBinary ?? 'qemu-img';
  }

  /** KVM or TCG, and why (tried once per process). */
  async accelerator(): Promise<AccelChoice> {
    const want = this.opts.accel ?? 'auto';
    if (want === 'tcg') return { accel: 'tcg', reason: 'software emulation (TCG) chosen by configuration' };
    const found = await detectAccel(this.qemu);
    if (want === 'kvm' && found.accel !== 'kvm')
      throw new Error(`KVM was asked for but is not usable: ${found.reason}`);
    return found;
  }

  /** Builds (once) the kernel and the template's root disk. */
  images(template: string): Promise<VmImages> {
    return this.boot.images(template);
  }

  async create(spec: CapsuleSpec): Promise<RuntimeHandle> {
    const { netns, capsuleIp } = this.boot.check(spec);
    const [images, accel] = await Promise.all([this.images(spec.template), this.accelerator()]);
    const { templateDir: tdir, frozen } = await this.boot.frozenTemplate<SnapshotInfo>(spec.template);
    const dir = this.boot.sandboxDir(spec.id);
    await this.boot.freshDirs(dir);
    // Under emulation V8's JIT costs more than it saves (TCG re-translates every generated code
    // page): --jitless halves boot-to-ready and makes commands ~5x faster there.
    const nodeFlags = this.opts.guestNodeFlags ?? (accel.accel === 'tcg' ? ['--jitless'] : []);
    const volumes = this.boot.volumeShares(spec);
    // Its memory is a guest that mounted its own disks already and would not mount these.
    if (frozen && volumes.shares.length)
      throw new InvalidArgumentError(
        `template ${spec.template} is a memory snapshot; a capsule of it cannot mount volumes on the qemu runtime`,
      );
    const cmdline = this.boot.kernelArgs(spec, [
      ...(nodeFlags.length ? [`wrenn.node_flags=${nodeFlags.join(',')}`] : []),
      ...volumes.kernelArgs,
    ]);
    const state: QemuState = {
      dir,
      pid: 0,
      netns,
      capsuleIp,
      accel: accel.accel,
      template: spec.template,
      // A snapshot template starts from its frozen memory: vCPUs and memory are the snapshot's.
      vcpus: frozen?.vcpus ?? spec.vcpus,
      memoryMb: frozen?.memoryMb ?? spec.memoryMb,
      kernel: images.kernel.bzImage,
      initrd: images.kernel.initrd,
      disk: join(dir, 'disk.qcow2'),
      cmdline,
      mac: macFor(spec.id, 0x57),
      phase: 'running',
      statePath: join(dir, 'snapshot', 'device.mig'),
      memoryPath: join(dir, 'memory'),
      chainDir: join(dir, 'snapshot'),
      ...(volumes.shares.length ? { volumeShares: volumes.shares } : {}),
    };
    const handle: RuntimeHandle = { runtime: 'qemu', id: spec.id, address: capsuleIp, state };
    try {
      // Copy-on-write disk: device-mapper is not used (absent on these hosts); qcow2 over the shared base.
      const img = await runTool(this.qemuImg, [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-F',
        'raw',
        '-b',
        images.rootfs,
        state.disk,
      ]);
      if (img.code !== 0) throw new Error(`qemu-img create failed: ${img.out.trim()}`);
      await this.boot.plugTap(state);
      if (frozen && (await exists(join(tdir, VM_DEVICE_FILE)))) {
        await materializeChain(join(tdir, VM_MEMORY_DIR), state.memoryPath as string);
        await this.launch(handle.id, state, true);
        await this.loadIncoming(state, join(tdir, VM_DEVICE_FILE));
      } else if (frozen) {
        await this.launch(handle.id, state, true, false); // RAM comes with the stream
        await this.loadIncoming(state, join(tdir, LEGACY_MEMORY_FILE));
        await this.setIgnoreShared(state, true); // from now on migrations leave the RAM file out
      } else {
        await this.launch(handle.id, state, false);
      }
      await this.waitReady(state);
      await this.boot.saveHandle(handle);
      return handle;
    } catch (err) {
      await this.destroy(handle).catch(() => {});
      throw err;
    }
  }

  private args(id: string, s: QemuState, incoming: boolean): string[] {
    if (!s.memoryPath) throw new Error('internal: the guest RAM file path is not set');
    const vols = s.volumeDisks ?? [];
    const shares = s.volumeShares ?? [];
    for (const p of [
      s.dir,
      s.kernel,
      s.initrd,
      s.disk,
      s.memoryPath,
      ...vols.map((v) => v.image),
      ...shares.map((v) => v.dir),
    ]) {
      if (!SAFE_PATH.test(p)) throw new Error(`path ${JSON.stringify(p)} has characters the qemu runtime cannot quote`);
    }
    return [
      '-name',
      `wrenn-${id}`,
      '-accel',
      s.accel,
      '-cpu',
      s.accel === 'kvm' ? 'host' : 'max',
      // RAM in a file the migration leaves out: a pause writes it as a memory generation itself.
      '-object',
      `memory-backend-file,id=${RAM_ID},size=${s.memoryMb}M,mem-path=${s.memoryPath},share=on`,
      '-machine',
      `pc,memory-backend=${RAM_ID}`,
      '-m',
      String(s.memoryMb),
      '-smp',
      String(s.vcpus),
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-no-reboot',
      '-chardev',
      `file,id=con,path=${join(s.dir, 'console.log')},append=on`,
      '-serial',
      'chardev:con',
      '-kernel',
      s.kernel,
      '-initrd',
      s.initrd,
      '-append',
      s.cmdline,
      '-drive',
      `file=${s.disk},if=none,id=root,format=qcow2,cache=writeback,discard=unmap`,
      '-device',
      'virtio-blk-pci,drive=root',
      ...vols.flatMap((v, i) => [
        '-drive',
        `file=${v.image},if=none,id=vol${i},format=raw,cache=writeback`,
        '-device',
        `virtio-blk-pci,drive=vol${i},serial=${v.serial}`,
      ]),
      // passthrough: the guest's uids and modes are stored as they are (the export's idmap puts
      // them in the canonical range); QEMU opens every path component with O_NOFOLLOW below the
      // export, and the export is nosuid and nodev on the host.
      ...shares.flatMap((v, i) => [
        '-fsdev',
        `local,id=fs${i},path=${v.dir},security_model=passthrough`,
        '-device',
        `virtio-9p-pci,fsdev=fs${i},mount_tag=${v.tag}`,
      ]),
      '-netdev',
      'tap,id=net0,ifname=tap0,script=no,downscript=no',
      '-device',
      `virtio-net-pci,netdev=net0,mac=${s.mac}`,
      '-qmp',
      `unix:${join(s.dir, 'qmp.sock')},server=on,wait=off`,
      '-pidfile',
      join(s.dir, 'qemu.pid'),
      '-daemonize',
      ...(incoming ? ['-incoming', 'defer'] : []),
    ];
  }

  /**
   * Starts QEMU inside the capsule's network namespace, detached (it outlives the agent), with
   * x-ignore-shared set (its migrations carry device state only, the RAM stays in the file) unless
   * an incoming stream still carries the RAM.
   */
  private async launch(id: string, s: QemuState, incoming: boolean, ignoreShared = true): Promise<void> {
    await rm(join(s.dir, 'qemu.pid'), { force: true });
    await rm(join(s.dir, 'qmp.sock'), { force: true });
    const r = await runTool('ip', ['netns', 'exec', s.netns, this.qemu, ...this.args(id, s, incoming)]);
    if (r.code !== 0) throw new Error(`QEMU did not start (exit ${r.code}): ${r.out.trim()}`);
    s.pid = Number((await readFile(join(s.dir, 'qemu.pid'), 'utf8')).trim());
    if (!pidAlive(s.pid)) throw new Error(`QEMU exited right after starting: ${await consoleTail(s.dir)}`);
    try {
      await this.setIgnoreShared(s, ignoreShared);
    } catch (err) {
      process.kill(s.pid, 'SIGKILL');
      throw err;
    }
  }

  private async setIgnoreShared(s: QemuState, on: boolean): Promise<void> {
    const q = await this.qmp(s);
    try {
      await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] });
    } finally {
      q.close();
    }
  }

  private async waitReady(s: QemuState): Promise<void> {
    await waitVmReady(s, this.opts.readyTimeoutMs ?? 120_000);
  }

  private async qmp(s: QemuState): Promise<QmpClient> {
    return QmpClient.connect(join(s.dir, 'qmp.sock'), 10_000);
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    const s = handle.state as QemuState;
    await killVmmProcess(s.pid, 'QEMU', handle.id);
    await this.boot.teardown(s, [s.dir]);
  }

  async pause(handle: RuntimeHandle, mode: 'freeze' | 'hibernate' | 'memory-snapshot'): Promise<PauseResult> {
    const s = handle.state as QemuState;
    if (s.phase === 'saved' && s.ramNotInChain) return this.saveRam(handle); // a retry
    if (s.phase === 'saved') return s.lastSnapshot ?? this.legacySavedResult(s);
    const q = await this.qmp(s);
    try {
      await q.execute('stop');
      if (mode === 'freeze' || s.volumeShares?.length) {
        s.phase = 'frozen';
        return {
          keeps: s.volumeShares?.length
            ? 'memory and processes (vCPUs stopped; the VM keeps its memory in QEMU: a VM with a 9p volume mounted cannot write a memory snapshot)'
            : 'memory and processes (vCPUs stopped; the VM keeps its memory)',
          processesKept: true,
        };
      }
      await mkdir(dirname(s.statePath), { recursive: true });
      await rm(s.statePath, { force: true });
      await this.migrateToFile(q, s.statePath, handle.id);
      await q.execute('quit').catch(() => {});
    } catch (err) {
      if (s.phase === 'running') await q.execute('cont').catch(() => {}); // a frozen VM stays frozen
      throw err;
    } finally {
      q.close();
    }
    if (!(await waitGone(s.pid, 10_000))) process.kill(s.pid, 'SIGKILL');
    await waitGone(s.pid, 5_000);
    s.pid = 0;
    s.phase = 'saved';
    if (!s.memoryPath || !s.chainDir) {
      // Started by an older agent without a RAM file: its stream holds the RAM.
      s.lastSnapshot = await this.legacySavedResult(s);
      await this.boot.saveHandle(handle);
      return s.lastSnapshot;
    }
    s.ramNotInChain = true;
    await this.boot.saveHandle(handle);
    return this.saveRam(handle);
  }

  /** The stopped VM's RAM file becomes the chain's next generation (and is removed). */
  private async saveRam(handle: RuntimeHandle): Promise<PauseResult> {
    const s = handle.state as QemuState;
    const gen = await saveGeneration(s.chainDir as string, s.memoryPath as string).catch((err: Error) => {
      throw new Error(
        `${handle.id} is paused (QEMU stopped) but writing its memory snapshot failed: ${err.message}; ` +
          'its RAM file is kept: pause again to retry, or resume (it resumes from that file)',
      );
    });
    s.ramNotInChain = false;
    s.lastSnapshot = pauseResult(gen, await diskBytes(s.statePath));
    await this.boot.saveHandle(handle);
    return s.lastSnapshot;
  }

  /** Writes the VM's migration stream (device state; RAM too only without x-ignore-shared) to `file`. */
  private async migrateToFile(q: QmpClient, file: string, id: string): Promise<void> {
    if (!SAFE_PATH.test(file))
      throw new Error(`path ${JSON.stringify(file)} has characters the qemu runtime cannot quote`);
    // The VM is stopped, so one pass writes everything; lift the default bandwidth cap.
    await q.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 });
    await q.execute('migrate', { uri: `exec:cat > '${file}'` });
    for (;;) {
      const m = await q.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (m.status === 'completed') return;
      if (m.status === 'failed' || m.status === 'cancelled')
        throw new Error(`writing the VM state of ${id} failed: ${m['error-desc'] ?? m.status}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async legacySavedResult(s: QemuState): Promise<PauseResult> {
    const bytes = await diskBytes(s.statePath);
    return {
      keeps: `memory and processes (full memory snapshot: QEMU migration stream of ${Math.round(bytes / 1024 ** 2)} MiB; QEMU stopped, its memory freed)`,
      processesKept: true,
      snapshot: { kind: 'full', bytes },
    };
  }

  async resume(handle: RuntimeHandle): Promise<RuntimeHandle> {
    const s = handle.state as QemuState;
    if (s.phase === 'running') return handle;
    if (s.phase === 'frozen') {
      const q = await this.qmp(s);
      try {
        await q.execute('cont');
      } finally {
        q.close();
      }
      s.phase = 'running';
      return handle;
    }
    if (!(await exists(s.statePath)))
      throw new Error(`the VM state ${s.statePath} of ${handle.id} is missing; the capsule cannot resume`);
    const legacy = !s.memoryPath || !s.chainDir;
    if (legacy) {
      // A stream with the RAM in it (paused before file-backed RAM): it fills a fresh RAM file.
      s.memoryPath = join(s.dir, 'memory');
      s.chainDir = join(s.dir, 'snapshot');
      await rm(s.memoryPath, { force: true });
    } else if (s.ramNotInChain && (await exists(s.memoryPath as string))) {
      // The RAM file never made it into the chain: it is the newest memory, use it as it is.
    } else {
      if (!(await hasChain(s.chainDir as string)))
        throw new Error(`the memory snapshot in ${s.chainDir} of ${handle.id} is missing; the capsule cannot resume`);
      await materializeChain(s.chainDir as string, s.memoryPath as string);
    }
    try {
      await this.boot.plugTap(s);
      await this.launch(handle.id, s, true, !legacy);
      await this.loadIncoming(s, s.statePath);
      if (legacy) await this.setIgnoreShared(s, true); // from now on migrations leave the RAM file out
      await this.waitReady(s);
    } catch (err) {
      if (legacy) {
        s.memoryPath = undefined; // still the old layout for the next attempt
        s.chainDir = undefined;
      }
      throw err;
    }
    s.phase = 'running';
    s.ramNotInChain = false;
    await rm(s.statePath, { force: true });
    if (legacy) s.statePath = join(s.chainDir as string, 'device.mig');
    await this.boot.saveHandle(handle);
    return handle;
  }

  /** Feeds a migration stream file into a QEMU started with `-incoming defer` and runs the VM. */
  private async loadIncoming(s: QemuState, file: string): Promise<void> {
    if (!SAFE_PATH.test(file))
      throw new Error(`path ${JSON.stringify(file)} has characters the qemu runtime cannot quote`);
    const q = await this.qmp(s);
    try {
      await q.execute('migrate-incoming', { uri: `exec:cat '${file}'` });
      for (;;) {
        const status = await q.status();
        if (status === 'running') break;
        if (status === 'paused' || status === 'postmigrate') {
          await q.execute('cont');
          continue;
        }
        if (!pidAlive(s.pid)) throw new Error(`QEMU exited while loading ${file}`);
        if (status !== 'inmigrate') {
          const m = await q.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
          if (m.status === 'failed')
            throw new Error(`loading the memory snapshot failed: ${m['error-desc'] ?? 'unknown'}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch (err) {
      if (pidAlive(s.pid)) process.kill(s.pid, 'SIGKILL');
      throw err;
    } finally {
      q.close();
    }
  }

  /**
   * Writes template `name` from the capsule: its disk flattened into rootfs.ext4, its device state
   * and its memory as one Full generation, so new capsules start with its processes already
   * running. A running capsule is stopped for the copy and continues afterwards.
   */
  async snapshot(handle: RuntimeHandle, name: string): Promise<void> {
    await this.boot.snapshotTemplate(name, handle, async (tmp) => {
      await this.writeTemplateFiles(handle, tmp);
      return undefined;
    });
  }

  /** The capsule's flattened disk, device state and memory (one Full generation) in `tmp`. */
  private async writeTemplateFiles(handle: RuntimeHandle, tmp: string): Promise<void> {
    const s = handle.state as QemuState;
    if (s.volumeShares?.length)
      throw new FailedPreconditionError(
        `${handle.id} has 9p volumes mounted; QEMU cannot migrate (snapshot) a VM with a 9p export mounted`,
      );
    if (s.phase === 'saved' && (!s.memoryPath || !s.chainDir)) {
      await copyFile(s.statePath, join(tmp, LEGACY_MEMORY_FILE)); // one stream with the RAM in it
      await this.flattenDisk(s.disk, join(tmp, ROOTFS_IMAGE));
      return;
    }
    await mkdir(join(tmp, VM_MEMORY_DIR), { recursive: true });
    const buildId = newBuildId();
    const memFile = generationFile(join(tmp, VM_MEMORY_DIR), buildId);
    if (s.phase === 'saved') {
      await copyFile(s.statePath, join(tmp, VM_DEVICE_FILE));
      await materializeChain(s.chainDir as string, memFile); // the chain flattened: one sparse Full file
      await addGeneration(join(tmp, VM_MEMORY_DIR), buildId, 'full');
      await this.flattenDisk(s.disk, join(tmp, ROOTFS_IMAGE));
      return;
    }
    if (!s.memoryPath)
      throw new Error(`${handle.id} runs without a RAM file (started by an older agent); pause and resume it first`);
    const q = await this.qmp(s);
    try {
      if (s.phase === 'running') await q.execute('stop');
      await this.migrateToFile(q, join(tmp, VM_DEVICE_FILE), handle.id);
      // The VM is stopped: its RAM file and flushed disk match the device state.
      await sparseCopy(s.memoryPath, memFile);
      await addGeneration(join(tmp, VM_MEMORY_DIR), buildId, 'full');
      await this.flattenDisk(s.disk, join(tmp, ROOTFS_IMAGE));
    } finally {
      if (s.phase === 'running') await q.execute('cont').catch(() => {});
      q.close();
    }
  }

  private async flattenDisk(qcow2: string, out: string): Promise<void> {
    // -U: the (stopped) VM still holds the image open.
    const r = await runTool(this.qemuImg, ['convert', '-U', '-f', 'qcow2', '-O', 'raw', '-S', '4k', qcow2, out]);
    if (r.code !== 0) throw new Error(`qemu-img convert failed: ${r.out.trim()}`);
  }

  async isAlive(handle: RuntimeHandle): Promise<boolean> {
    const s = handle.state as QemuState;
    if (s.phase === 'saved')
      return (await exists(s.statePath)) && (!s.chainDir || !s.memoryPath || hasChain(s.chainDir));
    if (!pidAlive(s.pid)) return false;
    const cmd = await readFile(`/proc/${s.pid}/cmdline`, 'utf8').catch(() => '');
    return cmd.includes(`wrenn-${handle.id}`);
  }

  watchExit(handle: RuntimeHandle, onExit: (reason: string) => void): () => void {
    const s = handle.state as QemuState;
    if (s.phase === 'saved') return () => undefined; // no process while saved to disk
    return watchVmmExit(s, 'QEMU', (args) => args.includes(`wrenn-${handle.id}`), onExit);
  }

  async stats(handle: RuntimeHandle): Promise<CapsuleStats> {
    const s = handle.state as QemuState;
    const disk = await stat(s.disk).catch(() => undefined);
    return vmmStats(s.phase === 'saved' ? 0 : s.pid, {
      memoryMb: s.memoryMb,
      diskUsedBytes: disk ? disk.blocks * 512 : 0,
    });
  }

  async cleanupStale(knownIds: ReadonlySet<string>): Promise<void> {
    await this.boot.sweepStale(knownIds, async (handle) => {
      const s = handle.state as QemuState;
      if (s.pid && !(await this.isAlive(handle))) s.pid = 0; // pid reused by something else
      await this.destroy(handle);
    });
  }
}

/** The pause result of a memory generation, with how it was found said plainly. */
function pauseResult(gen: SavedGeneration, deviceBytes: number): PauseResult {
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
  const how =
    gen.kind === 'full'
      ? `full memory snapshot: the guest RAM file, ${mib(gen.bytes)} on disk (zero blocks left out)`
      : `diff memory snapshot: ${gen.changedBlocks} of ${gen.totalBlocks} ${gen.blockSize / 1024} KiB blocks changed, ${mib(gen.bytes)} on disk; ` +
        'found by comparing the guest RAM file with the previous generations block by block (QEMU 7.2 exports no dirty-page list to files)';
  const chain = gen.collapsed
    ? `the chain reached its limit and was collapsed into one full file`
    : `generation ${gen.generations} of the chain`;
  return {
    keeps: `memory and processes (${how}; ${chain}; device state ${mib(deviceBytes)}; QEMU stopped, its memory freed)`,
    processesKept: true,
    snapshot: { kind: gen.kind, bytes: gen.bytes + deviceBytes },
  };
}

/** The QEMU runtime (not registered anywhere by itself: the agent chooses runtimes per host). */
export function createQemuRuntime(opts: QemuRuntimeOptions): QemuRuntime {
  return new QemuRuntime(opts);
}

export { GUEST_IP };
