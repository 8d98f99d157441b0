// The namespace runtime: a capsule is a process tree in its own mount, pid, uts, ipc, net and
// user namespaces (root inside = the first id of the capsule's own host id range, id-ranges.ts),
// limited by cgroup v1, on an overlayfs root (template layers read-only + a writable layer on the
// capsule's own disk, quota-disk.ts, both seen through idmapped mounts), with envd as its main process.
//
// All mounts live only in the capsule's private mount namespace: when its last process exits the
// kernel drops them, so the host never holds a capsule mount that could leak.
//
// Nothing the capsule can write lives on the host's file system: its writable layer and its /etc
// files are on its own disk, and its output (envd's and the init's) is a pipe that the helper's
// host-side parent copies into <sandbox>/envd.log with a size cap (nsinit.c).
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statfsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { native } from '@wrenn/native';
import { ENV_NAME_RE, ENVD_PORT } from '@wrenn/protocol';
import { diskUsageBytes } from '../../rootfs/disk-usage.js';
import { HOST_ID_BASE } from '../../rootfs/id-map.js';
import { validateTemplateName } from '../../rootfs/manifest.js';
import { removeTree } from '../../rootfs/remove-tree.js';
import type { TemplateStore } from '../../rootfs/template-store.js';
import type { CapsuleRuntime, CapsuleSpec, CapsuleStats, PauseResult, RuntimeHandle } from '../runtime.js';
import { writeBootId } from './boot-id.js';
import { CapsuleCgroups, removeCgroupParentIfEmpty } from './cgroups.js';
import { writeEtcFiles } from './etc-files.js';
import { exitReason, watchInitExit } from './exit-watch.js';
import { raiseFileMax } from './file-table.js';
import { waitForHealth } from './host-health.js';
import { type IdRange, type IdRangeConfig, IdRangeStore, idRangeConfig, subordinateIdConflicts } from './id-ranges.js';
import { layerDirs, makeLayerDirs } from './layer-dirs.js';
import {
  defaultAppDir,
  ENVD_NODE_FLAGS,
  envdScript,
  type NodeRuntimeLayout,
  resolveNodeRuntime,
} from './node-runtime.js';
import { capsuleEnv, nsinitStartArgs } from './nsinit-args.js';
import { nsinitPath } from './nsinit-binary.js';
import { startInit } from './nsinit-start.js';
import { readStartTime } from './proc-start-time.js';
import { DISK_MOUNT, QuotaDisks } from './quota-disk.js';
import { type SeccompSwitch, seccompAllowOf } from './seccomp-switches.js';
import { cleanupStaleCapsules } from './stale-capsules.js';
import { stopCapsuleProcesses } from './stop-capsule.js';
import { checkVolumePathsInLayers } from './volume-paths.js';

export { capsuleRootId, ENVD_LOG_MAX_BYTES } from './nsinit-args.js';
export { readStartTime } from './proc-start-time.js';

export { ENVD_PORT };
/** Each capsule's own disk, unless NamespaceRuntimeOptions.diskMb says otherwise. */
export const DEFAULT_DISK_MB = 10 * 1024;

export interface NamespaceRuntimeOptions {
  /** WRENN_DIR: capsules live in <dataDir>/sandboxes/<id>. */
  dataDir: string;
  /** Where templates come from (usually new TemplateStore({ imagesDir: <dataDir>/images })). */
  templates: TemplateStore;
  /** pids.max of every capsule (default 512): stops fork bombs. */
  pidsMax?: number;
  /** The Wrenn install whose envd bundle is bind-mounted read-only at /opt/wrenn/envd (default: this repository). */
  appDir?: string;
  /** The node binary bind-mounted at /opt/wrenn/runtime/bin/node (default: the agent's own). */
  nodePath?: string;
  /** How long envd may take to answer /health (default 30 s). */
  readyTimeoutMs?: number;
  /**
   * The capsule's main process, default envd. Given `node` (argv prefix that runs the bound
   * node inside the capsule) it returns the argv; it must serve HTTP 2xx on readyPort/readyPath.
   */
  mainCommand?: (node: readonly string[]) => string[];
  readyPort?: number;
  readyPath?: string;
  cgroupRoot?: string;
  /** Parent group under each controller (default "wrenn"); separate test runs use their own. */
  cgroupParent?: string;
  /**
   * After the in-capsule /health check, also GET /health from the host at spec.network.capsuleIp
   * (proves routing and firewall; costs a connection set-up). Default false.
   */
  hostHealthCheck?: boolean;
  /**
   * Name servers written to each capsule's /etc/resolv.conf. Default: the host's own from
   * /etc/resolv.conf, minus loopback ones (a capsule cannot reach the host's 127.0.0.x).
   */
  dnsServers?: string[];
  /** Write the helper's per-step timings into each capsule's envd.log (default: WRENN_NSINIT_TRACE=1). */
  trace?: boolean;
  /**
   * Size in MiB of each capsule's own disk (a sparse ext4 image holding its writable layer):
   * writes beyond it fail inside with ENOSPC. Default 10240; 0 keeps the writable layer on the
   * data dir's file system without a limit.
   */
  diskMb?: number;
  /** The host id block capsule ranges come from (default WRENN_CAPSULE_ID_BASE / _RANGES, see id-ranges.ts). */
  idRanges?: Partial<IdRangeConfig>;
  /**
   * Free space in MiB the data dir's file system keeps beyond a new capsule's whole disk: a create
   * that would leave less is refused (HostCapacityError). Default 1024 (WRENN_DISK_RESERVE_MB).
   */
  diskReserveMb?: number;
}

/** Runtime-specific part of the handle (JSON-serialisable, persisted by the manager). */
export interface NamespaceState {
  /** Host pid of the capsule's init (PID 1 inside). 0 while hibernated. */
  pid: number;
  /** /proc/<pid>/stat start time: tells our init from a recycled pid. */
  startTime: string;
  /** The helper that is the init's parent (reaps it, outside the capsule's cgroups), and its start time. */
  helperPid?: number;
  helperStartTime?: string;
  sandboxDir: string;
  /** The capsule's cgroup directories (one per hierarchy). */
  cgroupDirs: string[];
  /** Overlay lower directories, top first. */
  layers: string[];
  spec: CapsuleSpec;
  paused: null | 'freeze' | 'hibernate';
  /** The writable layer is on the capsule's own disk (<sandboxDir>/disk), not in <sandboxDir>/upper. */
  ownDisk?: boolean;
  /** Set by setHostname (a pooled capsule handed to its user); default: the capsule id. */
  hostname?: string;
  /**
   * The capsule's own host uid/gid range (root inside = idRange.base). Absent on capsules made
   * before per-capsule ranges: those run as HOST_ID_BASE without idmapped layers.
   */
  idRange?: IdRange;
  /** What the template opens in the seccomp filter (seccomp-policy.c): "userns", "perf". */
  seccompAllow?: SeccompSwitch[];
}

/** How long each step of the last create() took, in milliseconds (for benchmarks and logs). */
export interface CreateTimings {
  template: number;
  prepare: number;
  spawnToInit: number;
  initToReady: number;
  hostHealth: number;
  total: number;
  /**
   * Where `prepare` went, each from the start of prepare to that step's end (steps run side by
   * side): the cgroups, the id range claim, the disk (or layer dirs) and the /etc files.
   */
  prepareSteps?: Record<string, number>;
}

const ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A cheap guard on the spec the manager hands over (the agent's edge checked the request against the contract). */
function validateSpec(spec: CapsuleSpec): void {
  const bad = (msg: string) => new Error(`invalid capsule spec: ${msg}`);
  if (!spec || typeof spec !== 'object') throw bad('missing');
  if (typeof spec.id !== 'string' || !ID.test(spec.id))
    throw bad(`id ${JSON.stringify(spec.id)} must be 1-63 of a-z 0-9 - (e.g. cl-abc123)`);
  validateTemplateName(spec.template);
  if (typeof spec.vcpus !== 'number' || !(spec.vcpus > 0) || spec.vcpus > 256)
    throw bad(`vcpus ${spec.vcpus} must be > 0 and <= 256`);
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 16)
    throw bad(`memoryMb ${spec.memoryMb} must be a whole number >= 16`);
  for (const [k, v] of Object.entries({ ...spec.envs, ...spec.metadata })) {
    if (!ENV_NAME_RE.test(k) || typeof v !== 'string' || v.includes('\0'))
      throw bad(`environment variable ${JSON.stringify(k)} is not valid`);
  }
  const netns = spec.network?.netnsPath;
  if (netns !== undefined && (typeof netns !== 'string' || !netns.startsWith('/')))
    throw bad('network.netnsPath must be an absolute path');
}

export class NamespaceRuntime implements CapsuleRuntime {
  readonly name = 'namespace' as const;
  readonly pauseModes = ['freeze', 'hibernate'] as const;
  readonly volumeMounts = true;
  readonly dataDir: string;
  readonly sandboxesDir: string;
  /** Step timings of the most recent create()/resume-from-hibernate. */
  lastCreateTimings: CreateTimings | undefined;
  private readonly opts: NamespaceRuntimeOptions;
  private layout: Promise<NodeRuntimeLayout> | undefined;
  /** Each capsule's own disk (quota-disk.ts); undefined when diskMb is 0. */
  private readonly disks: QuotaDisks | undefined;
  /** Each capsule's own host uid/gid range. */
  readonly idRanges: IdRangeStore;
  private fileMaxRaised: Promise<bigint> | undefined;

  constructor(opts: NamespaceRuntimeOptions) {
    if (!opts?.dataDir) throw new Error('NamespaceRuntime needs dataDir (e.g. /var/lib/wrenn)');
    if (!opts.templates) throw new Error('NamespaceRuntime needs a TemplateStore');
    if (opts.pidsMax !== undefined && (!Number.isInteger(opts.pidsMax) || opts.pidsMax < 16)) {
      throw new Error(`pidsMax ${opts.pidsMax} must be a whole number >= 16`);
    }
    this.opts = opts;
    this.dataDir = resolve(opts.dataDir);
    this.sandboxesDir = join(this.dataDir, 'sandboxes');
    const diskMb = opts.diskMb ?? DEFAULT_DISK_MB;
    if (!Number.isInteger(diskMb) || diskMb < 0 || (diskMb > 0 && diskMb < 16)) {
      throw new Error(`diskMb ${diskMb} must be 0 (no limit) or a whole number >= 16`);
    }
    const reserveMb = opts.diskReserveMb;
    if (reserveMb !== undefined && (!Number.isInteger(reserveMb) || reserveMb < 0)) {
      throw new Error(`diskReserveMb ${reserveMb} must be a whole number >= 0`);
    }
    this.disks =
      diskMb > 0
        ? new QuotaDisks({
            poolDir: join(this.dataDir, 'disk-pool'),
            sizeMb: diskMb,
            rootUid: HOST_ID_BASE,
            ...(reserveMb !== undefined ? { reserveMb } : {}),
          })
        : undefined;
    const ids = idRangeConfig(opts.idRanges);
    const conflicts = subordinateIdConflicts(ids);
    if (conflicts.length)
      throw new Error(
        `capsule id ranges clash with subordinate ids (set WRENN_CAPSULE_ID_BASE elsewhere):\n${conflicts.join('\n')}`,
      );
    this.idRanges = new IdRangeStore(this.dataDir, ids);
  }

  /** Stops background work (blank-disk refills) and waits for it; capsules keep running. */
  async close(): Promise<void> {
    await this.disks?.close();
    // With no capsule left, the cgroup parent goes too (rmdir keeps it while capsules are in it).
    removeCgroupParentIfEmpty(this.opts.cgroupRoot, this.opts.cgroupParent);
  }

  /** Resolves node, its libraries and the helper once, so the first create() is not slower. */
  async prepare(): Promise<void> {
    await Promise.all([this.nodeLayout(), nsinitPath(), this.disks?.fill(), this.unboundFileTable()]);
  }

  /** Once per runtime: fs.file-max out of a capsule's reach (why: file-table.ts). */
  private unboundFileTable(): Promise<bigint> {
    this.fileMaxRaised ??= raiseFileMax();
    return this.fileMaxRaised;
  }

  private nodeLayout(): Promise<NodeRuntimeLayout> {
    this.layout ??= resolveNodeRuntime(
      this.opts.nodePath ?? process.execPath,
      this.opts.appDir ?? defaultAppDir(),
    ).catch((err) => {
      this.layout = undefined;
      throw err;
    });
    return this.layout;
  }

  cgroups(id: string): CapsuleCgroups {
    return new CapsuleCgroups(id, this.opts.cgroupRoot, this.opts.cgroupParent);
  }

  async create(spec: CapsuleSpec): Promise<RuntimeHandle> {
    validateSpec(spec);
    const t0 = performance.now();
    const manifest = await this.opts.templates.ensureTemplate(spec.template);
    this.disks?.checkRoom(this.dataDir);
    if (!manifest.runtimes.includes('namespace')) {
      throw new Error(
        `template "${spec.template}" cannot run on the namespace runtime (it supports ${manifest.runtimes.join(', ')})`,
      );
    }
    const layers = await this.opts.templates.layerDirs(manifest);
    if (spec.volumes?.length)
      checkVolumePathsInLayers(
        layers,
        spec.volumes.map((v) => v.path),
      );
    const tTemplate = performance.now();
    const sandboxDir = join(this.sandboxesDir, spec.id);
    try {
      mkdirSync(sandboxDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new Error(
          `capsule ${spec.id} already exists on this host (${sandboxDir}); destroy it first or use another id`,
        );
      }
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(sandboxDir, { recursive: true });
    }
    const state: NamespaceState = {
      pid: 0,
      startTime: '',
      sandboxDir,
      cgroupDirs: this.cgroups(spec.id).uniqueDirs(),
      layers,
      spec,
      paused: null,
      ownDisk: this.disks !== undefined,
      seccompAllow: seccompAllowOf(manifest),
    };
    try {
      // Independent steps side by side; all of them settle before a failure tears down, so the
      // teardown never races a mount still under way.
      const steps: Record<string, number> = {};
      const timed = <T>(name: string, p: Promise<T>) =>
        p.finally(() => {
          steps[name] = performance.now() - tTemplate;
        });
      const pending = Promise.allSettled([
        timed('idRange', this.idRanges.allocate(spec.id)),
        this.unboundFileTable(),
        timed('layerDirs', makeLayerDirs(state, this.disks)),
      ]);
      // Synchronous work while the disk is being mounted (off the main thread, native loopMount).
      let cgroupsFailed: { err: unknown } | undefined;
      try {
        this.makeCgroups(state);
      } catch (err) {
        cgroupsFailed = { err };
      }
      steps.cgroups = performance.now() - tTemplate;
      const settled = await pending;
      if (cgroupsFailed) throw cgroupsFailed.err;
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      state.idRange = (settled[0] as PromiseFulfilledResult<IdRange>).value;
      await this.boot(state, t0, tTemplate, steps);
    } catch (err) {
      await this.teardown(spec.id, sandboxDir).catch(() => undefined);
      throw err;
    }
    // envd answered /health inside the capsule (wrenn-nsinit waited for it) with spec.envdInit applied.
    return { ...this.handleFor(state), ...(spec.envdInit ? { envdInitialized: true } : {}) };
  }

  /** The capsule's cgroups with its limits (synchronous file writes, see cgroups.ts). */
  private makeCgroups(state: NamespaceState): void {
    const { spec } = state;
    this.cgroups(spec.id).create({ vcpus: spec.vcpus, memoryMb: spec.memoryMb, pidsMax: this.pidsMax });
  }

  /** pids.max of every capsule, and its RLIMIT_NPROC. */
  private get pidsMax(): number {
    return this.opts.pidsMax ?? 512;
  }

  private handleFor(state: NamespaceState): RuntimeHandle {
    return {
      runtime: 'namespace',
      id: state.spec.id,
      address: state.spec.network?.capsuleIp ?? '',
      state: state as unknown as Record<string, unknown>,
    };
  }

  /** Creates the cgroups and starts init + main process on the existing sandbox dir. */
  private async boot(
    state: NamespaceState,
    t0: number,
    tTemplate: number,
    steps: Record<string, number> = {},
  ): Promise<void> {
    const { spec, sandboxDir } = state;
    const logPath = join(sandboxDir, 'envd.log');
    const [layout, helper] = await Promise.all([this.nodeLayout(), nsinitPath()]);
    const etcBinds = writeEtcFiles(state, this.opts.dnsServers);
    const tEtc = performance.now();
    const cg = this.cgroups(spec.id);
    if (!cg.exists()) this.makeCgroups(state); // create() made them already; a resume from hibernate did not
    const readyPort = this.opts.readyPort ?? ENVD_PORT;
    const main: string[] = this.opts.mainCommand
      ? this.opts.mainCommand(layout.nodeArgv)
      : [...layout.nodeArgv, ...ENVD_NODE_FLAGS, envdScript(), '--port', String(ENVD_PORT)];
    const args = nsinitStartArgs({
      state,
      cg,
      layout,
      etcBinds,
      logPath,
      bootIdPath: writeBootId(sandboxDir),
      main,
      readyFd: !this.opts.mainCommand,
      readyPort,
      readyPath: this.opts.readyPath ?? '/health',
      readyTimeoutMs: this.opts.readyTimeoutMs ?? 30_000,
      pidsMax: this.pidsMax,
      trace: this.opts.trace ?? process.env.WRENN_NSINIT_TRACE === '1',
    });
    const tPrepared = performance.now();
    const tInit = await startInit(state, { helper, args, env: capsuleEnv(spec), logPath });
    const tReady = performance.now();
    if (this.opts.hostHealthCheck && spec.network?.capsuleIp)
      await waitForHealth(spec.network.capsuleIp, readyPort, this.opts.readyPath ?? '/health');
    const tEnd = performance.now();
    this.lastCreateTimings = {
      template: tTemplate - t0,
      prepare: tPrepared - tTemplate,
      spawnToInit: tInit - tPrepared,
      initToReady: tReady - tInit,
      hostHealth: tEnd - tReady,
      total: tEnd - t0,
      prepareSteps: { ...steps, etcFiles: tEtc - tTemplate },
    };
  }

  private stateOf(handle: RuntimeHandle): NamespaceState {
    const s = handle?.state as unknown as NamespaceState | undefined;
    if (handle?.runtime !== 'namespace' || !s || typeof s.sandboxDir !== 'string' || !s.spec) {
      throw new Error(`not a namespace capsule handle: ${JSON.stringify(handle)?.slice(0, 200)}`);
    }
    return s;
  }

  /** Kills everything, drops the cgroups and removes the sandbox dir. Safe to repeat. */
  async destroy(handle: RuntimeHandle): Promise<void> {
    const s = this.stateOf(handle);
    await this.teardown(s.spec.id, s.sandboxDir, s);
  }

  private async teardown(id: string, sandboxDir: string, s?: NamespaceState): Promise<void> {
    this.closeCpuFd(id);
    await this.stopProcesses(id, s);
    await this.cgroups(id).remove();
    // The capsule's disk is the one mount its sandbox dir may hold (see removeTree).
    await removeTree(sandboxDir, { mounts: [join(sandboxDir, DISK_MOUNT)] });
    await this.idRanges.release(id);
  }

  private async stopProcesses(id: string, s?: NamespaceState): Promise<void> {
    await stopCapsuleProcesses(this.cgroups(id), s);
  }

  async pause(handle: RuntimeHandle, mode: 'freeze' | 'hibernate' | 'memory-snapshot'): Promise<PauseResult> {
    const s = this.stateOf(handle);
    if (s.paused) throw new Error(`capsule ${s.spec.id} is already paused (${s.paused})`);
    if (mode === 'freeze') {
      await this.cgroups(s.spec.id).freeze();
      s.paused = 'freeze';
      return { keeps: 'memory, running processes and disk', processesKept: true };
    }
    if (mode === 'hibernate') {
      await this.stopProcesses(s.spec.id, s);
      this.closeCpuFd(s.spec.id);
      await this.cgroups(s.spec.id).remove(); // frees the page cache charged to it as well
      s.pid = 0;
      s.startTime = '';
      s.helperPid = 0;
      s.helperStartTime = '';
      s.paused = 'hibernate';
      return { keeps: 'disk only: running processes were stopped and envd restarts on resume', processesKept: false };
    }
    throw new Error(`the namespace runtime cannot pause with "${mode}": use one of ${this.pauseModes.join(', ')}`);
  }

  async resume(handle: RuntimeHandle): Promise<RuntimeHandle> {
    const s = this.stateOf(handle);
    if (s.paused === 'freeze') {
      this.cgroups(s.spec.id).thaw();
      s.paused = null;
      return this.handleFor(s);
    }
    if (s.paused === 'hibernate') {
      const t0 = performance.now();
      try {
        if (s.ownDisk) await QuotaDisks.ensureMounted(s.sandboxDir);
        await this.boot(s, t0, t0);
      } catch (err) {
        // Keep the disk (it is what hibernate promised); drop whatever half-started.
        await this.stopProcesses(s.spec.id).catch(() => undefined);
        await this.cgroups(s.spec.id)
          .remove()
          .catch(() => undefined);
        s.pid = 0;
        throw err;
      }
      s.paused = null;
      return this.handleFor(s);
    }
    if (await this.isAlive(handle)) return this.handleFor(s);
    throw new Error(`capsule ${s.spec.id} is not paused and not running: nothing to resume`);
  }

  async snapshot(handle: RuntimeHandle, name: string): Promise<void> {
    const s = this.stateOf(handle);
    const cg = this.cgroups(s.spec.id);
    const running = s.paused !== 'hibernate' && cg.exists();
    if (s.ownDisk && !running) await QuotaDisks.ensureMounted(s.sandboxDir);
    const wasFrozen = running && cg.freezerState() === 'FROZEN';
    if (running && !wasFrozen) await cg.freeze();
    try {
      await this.opts.templates.snapshotFromCapsule({
        name,
        parent: s.spec.template,
        upperDir: layerDirs(s).upper,
        lowerDirs: s.layers, // the build of its template it started on (recipe versions)
      });
    } finally {
      if (running && !wasFrozen) cg.thaw();
    }
  }

  /**
   * Renames the capsule's host (a pooled capsule taking its user-visible id): the UTS namespace
   * from a thread of this process (native setHostnameIn, no fork), plus its /etc/hostname and
   * /etc/hosts. Kept across hibernate.
   */
  async setHostname(handle: RuntimeHandle, hostname: string): Promise<void> {
    const s = this.stateOf(handle);
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(hostname)) {
      throw new Error(`invalid hostname ${JSON.stringify(hostname)}: use 1-63 letters, digits and inner '-'`);
    }
    s.hostname = hostname;
    writeEtcFiles(s, this.opts.dnsServers);
    // isAlive also checks the pid is still our init (not a reused pid) right before we enter its namespace.
    if (!(await this.isAlive(handle))) return; // applied when it boots again
    try {
      native().setHostnameIn(s.pid, hostname);
    } catch (err) {
      throw new Error(
        `setting the hostname of ${s.spec.id} failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  async isAlive(handle: RuntimeHandle): Promise<boolean> {
    const s = this.stateOf(handle);
    return s.pid > 0 && s.startTime !== '' && readStartTime(s.pid) === s.startTime;
  }

  watchExit(handle: RuntimeHandle, onExit: (reason: string) => void): () => void {
    const s = this.stateOf(handle);
    const pid = s.pid;
    const startTime = s.startTime;
    return watchInitExit(
      s,
      () => startTime !== '' && readStartTime(pid) === startTime,
      () => {
        void exitReason(s).then(onExit);
      },
    );
  }

  async stats(handle: RuntimeHandle): Promise<CapsuleStats> {
    const s = this.stateOf(handle);
    const cg = this.cgroups(s.spec.id);
    const base = cg.exists()
      ? cg.stats()
      : { cpuUsageNs: 0n, memoryBytes: 0, memoryLimitBytes: s.spec.memoryMb * 1024 * 1024, pids: 0 };
    return { ...base, diskUsedBytes: await this.diskUsed(s) };
  }

  private cpuacctDir: string | undefined;
  private memoryDir: string | undefined;
  /** Each running capsule's cpuacct.usage, kept open: a pread costs ~6 us here, an open-read-close ~40 us (issue 15). */
  private readonly cpuFds = new Map<string, number>();
  private readonly counterBuf = Buffer.alloc(32);

  cpuUsageNs(handle: RuntimeHandle): bigint | undefined {
    // Read for every capsule in each 5-s round where any capsule used CPU: no path walk, no object.
    this.cpuacctDir ??= new CapsuleCgroups('', this.opts.cgroupRoot, this.opts.cgroupParent).dirs.cpuacct;
    const id = this.stateOf(handle).spec.id;
    let fd = this.cpuFds.get(id);
    try {
      if (fd === undefined) {
        fd = openSync(`${this.cpuacctDir}/${id}/cpuacct.usage`, 'r');
        this.cpuFds.set(id, fd);
      }
      const n = readSync(fd, this.counterBuf, 0, this.counterBuf.length, 0);
      return BigInt(this.counterBuf.toString('latin1', 0, n).trim());
    } catch {
      // Gone (ENOENT), or the group was removed under the open file (ENODEV: hibernated and
      // resumed into a new group): the full sample says what is true; the next read opens anew.
      this.closeCpuFd(id);
      return undefined;
    }
  }

  private closeCpuFd(id: string): void {
    const fd = this.cpuFds.get(id);
    if (fd === undefined) return;
    this.cpuFds.delete(id);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }

  memoryBytes(handle: RuntimeHandle): number | undefined {
    // Once a minute per idle capsule at most: an open-read-close, no fd kept for it.
    this.memoryDir ??= new CapsuleCgroups('', this.opts.cgroupRoot, this.opts.cgroupParent).dirs.memory;
    try {
      return Number(
        readFileSync(`${this.memoryDir}/${this.stateOf(handle).spec.id}/memory.usage_in_bytes`, 'latin1').trim(),
      );
    } catch {
      return undefined;
    }
  }

  allUsage(): { cpuNs: bigint; memoryBytes: bigint } | undefined {
    // The capsules' parent groups: each counter is the sum over every capsule (warm-pool ones too).
    if (this.cpuacctDir === undefined || this.memoryDir === undefined) {
      const dirs = new CapsuleCgroups('', this.opts.cgroupRoot, this.opts.cgroupParent).dirs;
      this.cpuacctDir = dirs.cpuacct;
      this.memoryDir = dirs.memory;
    }
    try {
      return {
        cpuNs: BigInt(readFileSync(`${this.cpuacctDir}/cpuacct.usage`, 'latin1').trim()),
        memoryBytes: BigInt(readFileSync(`${this.memoryDir}/memory.usage_in_bytes`, 'latin1').trim()),
      };
    } catch {
      return undefined;
    }
  }

  /**
   * Used space of the capsule's own disk from statfs (microseconds, what `df /` shows inside, and
   * what E2B's envd reports); without a disk of its own, a walk of the writable layer.
   */
  private async diskUsed(s: NamespaceState): Promise<number> {
    const { upper } = layerDirs(s);
    if (!s.ownDisk) return diskUsageBytes(upper);
    const fs = statfsSync(upper);
    return (fs.blocks - fs.bfree) * fs.bsize;
  }

  /** Kills, unmounts and removes every capsule of ours (cgroups, sandbox dirs) not in knownIds. */
  async cleanupStale(knownIds: ReadonlySet<string>): Promise<void> {
    const { cgroupRoot, cgroupParent } = this.opts;
    const sweep = { sandboxesDir: this.sandboxesDir, cgroupRoot, cgroupParent, idRanges: this.idRanges };
    await cleanupStaleCapsules({ ...sweep, cgroups: (id) => this.cgroups(id) }, knownIds);
  }

  /** The sandbox directory of a capsule id (exists while the capsule does). */
  sandboxDir(id: string): string {
    return join(this.sandboxesDir, id);
  }

  async exists(id: string): Promise<boolean> {
    return stat(this.sandboxDir(id)).then(
      () => true,
      () => false,
    );
  }
}
