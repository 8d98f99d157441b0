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
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fchownSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { native, spawnNative } from '@wrenn/native';
import { ENV_NAME_RE, ENVD_PORT } from '@wrenn/protocol';
import { hostNameServers } from '../../network/name-servers.js';
import { diskUsageBytes } from '../../rootfs/disk-usage.js';
import { HOST_ID_BASE, idMapLine, layerIdMapLine } from '../../rootfs/id-map.js';
import { validateTemplateName } from '../../rootfs/manifest.js';
import { mountsUnder, removeTree, unmountUnder } from '../../rootfs/remove-tree.js';
import type { TemplateStore } from '../../rootfs/template-store.js';
import type { CapsuleRuntime, CapsuleSpec, CapsuleStats, PauseResult, RuntimeHandle } from '../runtime.js';
import { CapsuleCgroups, CONTROLLERS, listCapsuleCgroupIds, removeCgroupParentIfEmpty } from './cgroups.js';
import { exitReason, watchInitExit } from './exit-watch.js';
import { CAPSULE_NOFILE, raiseFileMax } from './file-table.js';
import { type IdRange, type IdRangeConfig, IdRangeStore, idRangeConfig, subordinateIdConflicts } from './id-ranges.js';
import {
  defaultAppDir,
  ENVD_NODE_FLAGS,
  envdScript,
  GUEST_DIR,
  type NodeRuntimeLayout,
  resolveNodeRuntime,
} from './node-runtime.js';
import { nsinitPath } from './nsinit-binary.js';
import { DISK_MOUNT, QuotaDisks } from './quota-disk.js';
import { type SeccompSwitch, seccompAllowArg, seccompAllowOf } from './seccomp-switches.js';

export { ENVD_PORT };
/** envd.log grows to this, then is rotated once to envd.log.1 (see nsinit.c). */
export const ENVD_LOG_MAX_BYTES = 1024 * 1024;
/** Each capsule's own disk, unless NamespaceRuntimeOptions.diskMb says otherwise. */
export const DEFAULT_DISK_MB = 10 * 1024;
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

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

/** Host uid (and gid) of root inside the capsule. */
export function capsuleRootId(s: Pick<NamespaceState, 'idRange'>): number {
  return s.idRange?.base ?? HOST_ID_BASE;
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

/** Start time of a live (non-zombie) process, to tell it from a later process with the same pid. */
export function readStartTime(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, starttime field 22.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? undefined : f[19]; // a zombie is not alive
  } catch {
    return undefined;
  }
}

export class NamespaceRuntime implements CapsuleRuntime {
  readonly name = 'namespace' as const;
  readonly pauseModes = ['freeze', 'hibernate'] as const;
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

  /** Overlay upper and work dirs of a capsule. */
  private layerDirs(s: NamespaceState): { upper: string; work: string } {
    return s.ownDisk
      ? QuotaDisks.dirs(s.sandboxDir)
      : { upper: join(s.sandboxDir, 'upper'), work: join(s.sandboxDir, 'work') };
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
        timed('layerDirs', this.makeLayerDirs(state)),
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

  /** The root's mount point and the writable layer: on the capsule's own disk, or in the sandbox dir. */
  private async makeLayerDirs(state: NamespaceState): Promise<void> {
    mkdirSync(join(state.sandboxDir, 'rootfs'));
    if (this.disks) {
      await this.disks.attach(state.sandboxDir);
      return;
    }
    const { upper, work } = this.layerDirs(state);
    for (const d of [upper, work]) {
      mkdirSync(d);
      // The upper dir's root is the merged "/": it must belong to root inside the capsule. Both
      // are seen through an idmapped mount that hides ids outside the capsule's range.
      chownSync(d, HOST_ID_BASE, HOST_ID_BASE);
    }
    chmodSync(upper, 0o755);
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
    const etcBinds = this.writeEtcFiles(state);
    const tEtc = performance.now();
    const cg = this.cgroups(spec.id);
    if (!cg.exists()) this.makeCgroups(state); // create() made them already; a resume from hibernate did not
    const readyPort = this.opts.readyPort ?? ENVD_PORT;
    const main: string[] = this.opts.mainCommand
      ? this.opts.mainCommand(layout.nodeArgv)
      : [...layout.nodeArgv, ...ENVD_NODE_FLAGS, envdScript(), '--port', String(ENVD_PORT)];
    const rootId = capsuleRootId(state);
    // Without a prepared namespace the capsule gets a fresh one with loopback only.
    const netns = spec.network?.netnsPath;
    // [option, value] pairs for wrenn-nsinit start (see nsinit.c).
    const options: [string, string][] = [
      ...(netns ? [['--netns', netns] as [string, string]] : []),
      ...cg.uniqueDirs().map((d): [string, string] => ['--cgroup', d]),
      ...state.layers.map((l): [string, string] => ['--lower', l]),
      ['--upper', this.layerDirs(state).upper],
      ['--work', this.layerDirs(state).work],
      ['--rootfs', join(sandboxDir, 'rootfs')],
      ['--hostname', state.hostname ?? spec.id],
      ['--uid-map', idMapLine(rootId)],
      ['--gid-map', idMapLine(rootId)],
      ['--root-uid', String(rootId)],
      ['--pts-gid', String(rootId + 5)], // group tty inside
      // Layers stay stored as HOST_ID_BASE + u; the capsule sees them as its own ids.
      ...(state.idRange ? [['--layer-idmap', layerIdMapLine(rootId)] as [string, string]] : []),
      ['--nofile', CAPSULE_NOFILE],
      // The same cap as pids.max, checked earlier in fork (cheap refusals; see nsinit.c set_nproc).
      // Only with a host uid of its own: capsules sharing HOST_ID_BASE would share the count.
      ...(state.idRange ? [['--nproc', String(this.pidsMax)] as [string, string]] : []),
      // Root inside has no capabilities over the (host-owned) network namespace: let it bind
      // ports < 1024 and ping anyway.
      ['--sysctl', 'net/ipv4/ip_unprivileged_port_start=0'],
      ['--sysctl', 'net/ipv4/ping_group_range=0 2147483647'],
      ['--tmpfs', GUEST_DIR],
      ...layout.binds.map((b): [string, string] => ['--bind', `${b.src}:${b.dst}`]),
      // The capsule's own cgroups, read-only, as the roots of /sys/fs/cgroup/<controller>: envd's
      // metrics then report the capsule's real limits and usage.
      ['--tmpfs', '/sys/fs/cgroup'],
      ...CONTROLLERS.map((c): [string, string] => ['--bind', `${cg.dirs[c]}:/sys/fs/cgroup/${c}`]),
      ...etcBinds.map((b): [string, string] => ['--bind-rw-idmapped', `${b.src}:${b.dst}`]),
      ['--ready-port', String(readyPort)],
      ['--ready-path', this.opts.readyPath ?? '/health'],
      // envd says "ready" on a pipe from the init once it listens (WRENN_READY_FD): no HTTP poll.
      ...(this.opts.mainCommand ? [] : [['--ready-fd', '1'] as [string, string]]),
      ['--ready-timeout-ms', String(this.opts.readyTimeoutMs ?? 30_000)],
      ['--cwd', '/'],
      ['--seccomp-allow', seccompAllowArg(state)],
      ...((this.opts.trace ?? process.env.WRENN_NSINIT_TRACE === '1') ? [['--trace', '1'] as [string, string]] : []),
      // The capsule's output reaches this file only through the helper's parent, capped.
      ['--log', logPath],
      ['--log-max-bytes', String(ENVD_LOG_MAX_BYTES)],
    ];
    const args = ['start', ...options.flat(), '--', ...main];
    const env: Record<string, string> = {
      PATH: GUEST_PATH,
      HOME: '/root',
      USER: 'root',
      LANG: 'C.UTF-8',
      ...spec.metadata,
      ...spec.envs,
      WRENN_SANDBOX_ID: spec.id,
      WRENN_TEMPLATE_ID: spec.metadata?.WRENN_TEMPLATE_ID ?? spec.template,
      // Tells envd it runs inside a capsule (it then forwards ports bound on loopback).
      WRENN_CAPSULE: '1',
      // /init's settings at start: the capsule is ready for commands once envd answers.
      ...(spec.envdInit ? { WRENN_ENVD_INIT: JSON.stringify(spec.envdInit) } : {}),
    };
    const tPrepared = performance.now();
    const log = openSync(logPath, 'a');
    let tInit = 0;
    try {
      // A vfork spawn (@wrenn/native): a fork of the agent costs 3-5 ms here, more under load.
      const child = spawnNative(helper, args, { stdio: ['ignore', log, log, 'pipe'], detached: true, env });
      if (child.pid === undefined) {
        const [err] = (await once(child, 'error')) as [Error];
        throw new Error(
          `capsule ${spec.id} failed to start: could not run ${helper}: ${err.message}${logTail(logPath)}`,
        );
      }
      state.helperPid = child.pid;
      state.helperStartTime = readStartTime(child.pid) ?? '';
      const status = child.stdio[3] as NodeJS.ReadableStream;
      const lines = createInterface({ input: status });
      const exited = new Promise<number>((res) => child.once('exit', (code, sig) => res(code ?? (sig ? 128 : 1))));
      child.once('error', () => undefined);
      try {
        await new Promise<void>((resolveReady, reject) => {
          // The helper exits once it has copied the capsule's last output into the log: wait for
          // that (briefly) so the message shows it.
          let settled = false;
          const fail = (msg: string) => {
            if (settled) return;
            settled = true;
            void Promise.race([exited, sleep(2000, undefined, { ref: false })]).then(() =>
              reject(new Error(`capsule ${spec.id} failed to start: ${msg}${logTail(logPath)}`)),
            );
          };
          lines.on('line', (line) => {
            if (line.startsWith('pid ')) {
              state.pid = Number(line.slice(4));
              state.startTime = readStartTime(state.pid) ?? '';
              tInit = performance.now();
            } else if (line === 'ready' && !settled) {
              settled = true;
              resolveReady();
            } else if (line.startsWith('error ')) {
              fail(line.slice(6));
            }
          });
          lines.once('close', () => fail('the init exited before envd was ready'));
          child.once('error', (err) => fail(`could not run ${helper}: ${err.message}`));
          void exited.then((code) => {
            if (code !== 0) fail(`wrenn-nsinit exited with code ${code}`);
          });
        });
      } finally {
        lines.close();
        (status as unknown as { destroy(): void }).destroy();
        child.unref();
      }
    } finally {
      closeSync(log);
    }
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

  /**
   * The capsule's own /etc/hosts, /etc/hostname and /etc/resolv.conf, kept on its disk (beside the
   * upper dir, so its writes count against its quota) or, without a disk, in its sandbox dir, and
   * bind-mounted (writable, as on Docker) so they never end up in the upper layer or a snapshot.
   */
  private writeEtcFiles(state: NamespaceState): { src: string; dst: string }[] {
    // Synchronous: three small files on a local disk take microseconds, less than a single trip
    // through libuv's thread pool.
    const dir = state.ownDisk ? QuotaDisks.etcDir(state.sandboxDir) : join(state.sandboxDir, 'etc');
    mkdirSync(dir, { recursive: true });
    const id = state.hostname ?? state.spec.id;
    const servers = this.opts.dnsServers ?? hostNameServers();
    const files: [string, string][] = [
      ['hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${id}\n`],
      ['hostname', `${id}\n`],
      [
        'resolv.conf',
        servers.length
          ? servers.map((s) => `nameserver ${s}\n`).join('')
          : '# no DNS server configured for capsules on this host\n',
      ],
    ];
    return files.map(([name, text]) => {
      const src = join(dir, name);
      // Stored canonically like the upper layer; bound through the same idmap (--bind-rw-idmapped).
      rewriteInPlace(src, text, HOST_ID_BASE);
      return { src, dst: `/etc/${name}` };
    });
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
    await this.stopProcesses(id, s);
    await this.cgroups(id).remove();
    // The capsule's disk is the one mount its sandbox dir may hold (see removeTree).
    await removeTree(sandboxDir, { mounts: [join(sandboxDir, DISK_MOUNT)] });
    await this.idRanges.release(id);
  }

  private async stopProcesses(id: string, s?: NamespaceState): Promise<void> {
    const cg = this.cgroups(id);
    if (cg.exists()) await cg.killAll();
    // The init is in the cgroups from birth; this only matters if they were removed by hand.
    if (s?.pid && readStartTime(s.pid) === s.startTime) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone
      }
      for (let i = 0; i < 500 && readStartTime(s.pid) === s.startTime; i++) await sleep(2);
    }
    // The helper exits as soon as it has reaped the init: when destroy returns, nothing is left.
    const hp = s?.helperPid;
    if (hp && s.helperStartTime) {
      for (let i = 0; i < 1000 && readStartTime(hp) === s.helperStartTime; i++) await sleep(i < 20 ? 1 : 5);
    }
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
        upperDir: this.layerDirs(s).upper,
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
    this.writeEtcFiles(s);
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
    return { ...base, diskUsedBytes: await diskUsageBytes(this.layerDirs(s).upper) };
  }

  /** Kills, unmounts and removes every capsule of ours (cgroups, sandbox dirs) not in knownIds. */
  async cleanupStale(knownIds: ReadonlySet<string>): Promise<void> {
    const errors: string[] = [];
    for (const id of listCapsuleCgroupIds(this.opts.cgroupRoot, this.opts.cgroupParent)) {
      if (knownIds.has(id)) continue;
      const cg = this.cgroups(id);
      await cg
        .killAll()
        .then(() => cg.remove())
        .catch((err: Error) => errors.push(err.message));
    }
    const dirs = await readdir(this.sandboxesDir).catch(() => [] as string[]);
    for (const id of dirs) {
      if (knownIds.has(id)) continue;
      await removeTree(join(this.sandboxesDir, id)).catch((err: Error) => errors.push(err.message));
    }
    await this.idRanges.releaseUnknown(knownIds).catch((err: Error) => errors.push(err.message));
    // Capsule mounts are private to the capsule, but a crash of an older agent may have left some.
    for (const point of await mountsUnder(this.sandboxesDir)) {
      const id = point.slice(this.sandboxesDir.length + 1).split('/')[0] ?? '';
      if (!knownIds.has(id)) await unmountUnder(point).catch((err: Error) => errors.push(err.message));
    }
    if (errors.length) throw new Error(`cleanup of stale capsules was incomplete:\n${errors.join('\n')}`);
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

/**
 * Writes `text` over the start of the file and cuts it there: the file keeps its first block, so a
 * rename (setHostname) still works when the capsule has filled its disk. Owned by `owner` (root inside).
 */
function rewriteInPlace(path: string, text: string, owner: number): void {
  // Created when missing, never truncated first (and no O_APPEND: it would ignore the position).
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  try {
    const data = Buffer.from(text);
    writeSync(fd, data, 0, data.length, 0);
    ftruncateSync(fd, data.length);
    fchownSync(fd, owner, owner);
  } finally {
    closeSync(fd);
  }
}

/** The last lines of the capsule's log (and of its rotated half when the current one is short). */
function logTail(path: string): string {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  const text = `${read(`${path}.1`)}${read(path)}`.trim();
  return text ? `\n--- last lines of ${path} ---\n${text.split('\n').slice(-15).join('\n')}` : '';
}

/** GET /health from the host over the capsule's network: proves the path the agent will use. */
async function waitForHealth(ip: string, port: number, path: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const status = await new Promise<number>((res) => {
      const req = http.get({ host: ip, port, path, timeout: 1000, agent: false }, (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        last = err.message;
        res(0);
      });
    });
    if (status >= 200 && status < 300) return;
    if (status) last = `HTTP ${status}`;
    if (Date.now() > deadline)
      throw new Error(
        `envd answered inside the capsule but not at http://${ip}:${port}${path} from the host (${last}): check the capsule network`,
      );
    await sleep(5);
  }
}
