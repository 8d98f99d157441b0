// The sandbox manager: owns every capsule on this host. It drives the runtime, network and
// templates layers, keeps each capsule's record on disk (so a restarted agent re-adopts what still
// runs), enforces the lifecycle state machine and expires capsules whose timeout passed. It
// watches every capsule's processes (exit-watches.ts): a capsule whose envd or init exits by
// itself becomes `error` with the reason at once, and a dead warm-pool capsule is dropped.

import { join } from 'node:path';
import { CAPSULE_DEFAULTS, CAPSULE_LIMITS, type CapsuleRequest, type PauseMode } from '@wrenn/protocol';
import { assessCapacity, type CapacityConfig, type CapacityReport, capacityConfig } from '../capacity/capacity.js';
import { readHostReadings } from '../capacity/host-readings.js';
import { createEnvdClient, type EnvdClient, runInCapsule, waitForEnvd } from '../envd-client/index.js';
import { TRUST_CA_SCRIPT } from '../network/index.js';
import type { PruneReport } from '../oci/image-gc.js';
import { HostCapacityError } from '../runtimes/capacity-error.js';
import type { CapsuleRuntime, CapsuleStats, EnvdInit, RuntimeHandle, RuntimeName } from '../runtimes/runtime.js';
import { VolumeStore } from '../volumes/index.js';
import { assertVolumesFree, assertVolumeUnused, checkVolumeMounts, volumeSources } from './capsule-volumes.js';
import { warmUpEnvd } from './envd-warm-up.js';
import {
  AlreadyExistsError,
  CapsuleNotFoundError,
  FailedPreconditionError,
  InvalidArgumentError,
  TemplateInUseError,
  TemplateNotFoundError,
} from './errors.js';
import { ExitWatches } from './exit-watches.js';
import { CapsuleForks, type ForkResult, type ForkTarget } from './fork.js';
import { CAPSULE_ID_RE, newAccessToken, newCapsuleId } from './ids.js';
import { MetricsHistory } from './metrics-history.js';
import { RecordStore } from './persistence.js';
import { waitForReadyPorts } from './ready-ports.js';
import { assertMove, type CapsuleState } from './state-machine.js';
import type {
  CapsuleNetworkPolicy,
  CapsuleRecord,
  CapsuleVolumeMount,
  ManagerDeps,
  TemplateInfo,
  TimeoutAction,
} from './types.js';
import { checkRange, checkTemplateName, hostLimits } from './validate.js';
import { MAX_WARM_PER_TEMPLATE, type PooledCapsule, untilAborted, WarmPool, type WarmPoolStatus } from './warm-pool.js';

/** A create request as the agent's Connect service checked it (validate.ts) against the contract. */
export interface CreateCapsuleInput extends CapsuleRequest {
  id?: string;
  /** Volumes of this host to mount (VolumeStore ids). */
  volumes?: CapsuleVolumeMount[];
  timeoutAction?: TimeoutAction;
  envdAccessToken?: string;
  runtime?: RuntimeName;
  defaultWorkdir?: string;
  /** The token envd already holds (a VM restored from another capsule's memory): /init presents it. */
  inheritedEnvdToken?: string;
}

export type { PauseMode };

const ENVD_BOOT_TIMEOUT_MS = 15_000;
const { vcpus: DEFAULT_VCPUS, memoryMb: DEFAULT_MEMORY_MB } = CAPSULE_DEFAULTS;

export class SandboxManager {
  private readonly records = new Map<string, CapsuleRecord>();
  private readonly envd = new Map<string, EnvdClient>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly store: RecordStore;
  /** One timer, due at the earliest deadline of a running capsule (none while no deadline is set). */
  private reaper: NodeJS.Timeout | undefined;
  private reaperDue = Infinity;
  private stopped = false;
  private readonly pool: WarmPool;
  private readonly exits = new ExitWatches();
  private readonly exitListeners = new Set<(rec: CapsuleRecord) => void>();
  private readonly changeListeners = new Set<(change: AgentStateChange) => void>();
  private readonly capacityConfig: CapacityConfig;
  private readonly forks: CapsuleForks;
  /** This host's volumes (<dataDir>/volumes). */
  readonly volumes: VolumeStore;
  /** Samples of each running capsule every 5 s, for metrics over a time range. */
  readonly metricsHistory: MetricsHistory;

  constructor(private readonly deps: ManagerDeps) {
    this.store = new RecordStore(deps.dataDir);
    this.forks = new CapsuleForks(this, deps.dataDir, (level, msg, data) => this.log(level, msg, data));
    this.volumes = new VolumeStore(join(deps.dataDir, 'volumes'));
    this.capacityConfig = deps.capacity?.config ?? capacityConfig({});
    this.metricsHistory = new MetricsHistory({
      running: () =>
        [...this.records.values()].filter((r) => r.state === 'running').map((r) => ({ id: r.id, vcpus: r.vcpus })),
      stats: (id) => this.stats(id),
      cpuUsageNs: (id) => {
        const rec = this.records.get(id);
        return rec?.handle ? this.runtimeOf(rec).cpuUsageNs?.(rec.handle) : undefined;
      },
      memoryBytes: (id) => {
        const rec = this.records.get(id);
        return rec?.handle ? this.runtimeOf(rec).memoryBytes?.(rec.handle) : undefined;
      },
      allUsage: () => {
        // The sum over the runtimes that hold running capsules; unknown if one of them cannot tell.
        const names = new Set<string>();
        for (const r of this.records.values()) if (r.state === 'running') names.add(r.runtime);
        let cpuNs = 0n;
        let memoryBytes = 0n;
        for (const name of names) {
          const v = this.deps.runtimes.get(name as RuntimeName)?.allUsage?.();
          if (v === undefined) return undefined;
          cpuNs += v.cpuNs;
          memoryBytes += v.memoryBytes;
        }
        return { cpuNs, memoryBytes };
      },
    });
    this.pool = new WarmPool({
      sizes: deps.warmPool ?? {},
      vcpus: DEFAULT_VCPUS,
      memoryMb: DEFAULT_MEMORY_MB,
      boot: (template, signal) => this.bootPooled(template, signal),
      release: (e) => {
        this.exits.unwatch(poolKey(e.runtimeId));
        return this.releaseRuntime(deps.defaultRuntime, e.runtimeId, e.handle);
      },
      onError: (template, err) => this.log('error', 'warm pool boot failed', { template, err: String(err) }),
    });
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>): void {
    this.deps.log?.(level, msg, data);
  }

  /** Loads records, re-adopts capsules that still run, cleans what is stale, starts the reaper. */
  async start(): Promise<void> {
    await this.store.init();
    for (const rec of await this.store.loadAll()) {
      const runtime = this.deps.runtimes.get(rec.runtime);
      const alive = runtime && rec.handle ? await runtime.isAlive(rec.handle).catch(() => false) : false;
      const keep = rec.state === 'hibernated' || ((rec.state === 'running' || rec.state === 'paused') && alive);
      if (keep) {
        this.records.set(rec.id, rec);
        if (rec.state !== 'hibernated') this.watchCapsule(rec);
        this.log('info', 're-adopted capsule', { id: rec.id, state: rec.state });
      } else {
        this.log('warn', 'dropping capsule that no longer runs', { id: rec.id, state: rec.state });
        await this.releaseResources(rec).catch(() => undefined);
        await this.store.remove(rec.id);
      }
    }
    const known = new Set([...this.records.values()].map((r) => r.runtimeId ?? r.id));
    await this.deps.network.cleanupStale(known);
    for (const rt of this.deps.runtimes.values()) {
      // A leftover that cannot be removed now (a busy device) must not keep the agent from serving.
      await rt.cleanupStale(known).catch((err: unknown) =>
        this.log('error', 'could not clean up all stale resources; retried at the next start', {
          runtime: rt.name,
          err: String(err),
        }),
      );
    }
    // Fork templates whose forks went while the agent was down.
    await this.forks
      .sweep()
      .catch((err: unknown) => this.log('warn', 'fork template sweep failed', { err: String(err) }));
    this.armReaper();
    this.pool.fillAll();
    this.metricsHistory.start();
    this.deps.templates.startImageGc?.(
      () => this.templatesInUse(),
      (msg, data) => this.log('info', msg, data),
    );
  }

  /** Stops the manager's work: refuses new warm-pool work at once, aborts refills under way, destroys pooled capsules. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reaper) clearTimeout(this.reaper);
    this.deps.templates.stopImageGc?.();
    this.metricsHistory.stop();
    this.exits.unwatchAll();
    await this.pool.stop();
    for (const c of this.envd.values()) c.close();
    this.envd.clear();
  }

  /** Destroys every capsule (agent terminate), then unmounts the volumes no capsule holds any more. */
  async destroyAll(): Promise<void> {
    await Promise.all([...this.records.keys()].map((id) => this.destroy(id).catch(() => undefined)));
    // Their fork templates go with them, before the caller goes on to remove the agent.
    await this.forks
      .sweep()
      .catch((err: unknown) => this.log('warn', 'fork template sweep failed', { err: String(err) }));
    if (this.records.size === 0) await this.volumes.unmountAll();
  }

  get(id: string): CapsuleRecord {
    const rec = this.records.get(id);
    if (!rec) throw new CapsuleNotFoundError(id);
    return rec;
  }

  list(): CapsuleRecord[] {
    return [...this.records.values()];
  }

  /** Changes whenever a capsule is added or removed or its state, deadline or error changes. */
  revision(): number {
    return this.store.revision;
  }

  runtimeOf(rec: CapsuleRecord): CapsuleRuntime {
    const rt = this.deps.runtimes.get(rec.runtime);
    if (!rt) throw new Error(`runtime ${rec.runtime} is not available on this host`);
    return rt;
  }

  /** The envd client of a running capsule. */
  envdFor(id: string): EnvdClient {
    const rec = this.get(id);
    if (rec.state !== 'running') {
      throw new FailedPreconditionError(`capsule ${id} is ${rec.state}; resume it before using it`);
    }
    let c = this.envd.get(id);
    if (!c) {
      c = createEnvdClient(rec.address, rec.envdAccessToken);
      this.envd.set(id, c);
    }
    return c;
  }

  /** The runtimes this host offers, the default first. */
  runtimeNames(): RuntimeName[] {
    const names = [...this.deps.runtimes.keys()];
    return [this.deps.defaultRuntime, ...names.filter((n) => n !== this.deps.defaultRuntime)];
  }

  /**
   * What this host holds and how many more capsules fit now (readings from /proc). `counted`:
   * capsules already counted as held that are not made yet (a warm-pool boot counts itself);
   * `exactFds`: count the agent's open fds even far from the limit (metrics).
   */
  capacity(counted = 0, exactFds = false): CapacityReport {
    const held = this.records.size + this.pool.heldCount() - counted;
    const c = this.capacityConfig;
    const readings = readHostReadings({ exactFds, fdMargin: c.agentFdReserve + 2 * c.perCapsule.agentFds });
    return assessCapacity(readings, c, { capsules: held, spareNetworks: this.deps.capacity?.spareNetworks?.() ?? 0 });
  }

  /** Throws HostCapacityError, naming the full limit and its numbers, unless one more capsule fits. */
  private assertRoom(counted = 0): void {
    const full = this.capacity(counted).full;
    if (full?.full) throw new HostCapacityError(`host full: ${full.full}`, full.resource);
  }

  /** Capsules of `template` ready in the warm pool. */
  warmPoolReady(template: string): number {
    return this.pool.readyCount(template);
  }

  /** Each warm pool (ready and target per template), in the runtime pooled capsules boot on. */
  warmPools(): (WarmPoolStatus & { runtime: RuntimeName })[] {
    return this.pool.report().map((p) => ({ ...p, runtime: this.deps.defaultRuntime }));
  }

  /** Warm-pool boots under way (what a slow stop() waits for: each gives back what it made). */
  warmPoolBootsInFlight(): number {
    return this.pool.bootsInFlight();
  }

  /** The warm pool's targets per template now. */
  warmPoolTargets(): Record<string, number> {
    return this.pool.targets();
  }

  /**
   * New warm pool targets (template -> count; a template left out keeps none). Each template must
   * be one this host has or can build, and pooled capsules count against the host's capacity like
   * any other (a full host boots none).
   */
  async setWarmPool(sizes: Record<string, number>): Promise<void> {
    for (const [name, n] of Object.entries(sizes)) {
      checkTemplateName(name);
      if (!Number.isInteger(n) || n < 0 || n > MAX_WARM_PER_TEMPLATE)
        throw new InvalidArgumentError(`warm pool of ${name}: ${n} is not a count from 0 to ${MAX_WARM_PER_TEMPLATE}`);
      if (n > 0 && !(await this.deps.templates.get(name)) && !this.deps.templates.builtIns().includes(name))
        throw new TemplateNotFoundError(name);
    }
    this.log('info', 'warm pool set', { sizes });
    await this.pool.resize(sizes);
  }

  templates() {
    return this.deps.templates;
  }

  async create(input: CreateCapsuleInput, onProgress?: (line: string) => void): Promise<CapsuleRecord> {
    // Before the template is looked up: the image cache's collector then either keeps the
    // template until the capsule's record exists or already shows it gone (image-gc.ts).
    const release = this.deps.templates.hold?.(input.template || CAPSULE_DEFAULTS.template) ?? (() => {});
    try {
      return await this.createHeld(input, onProgress);
    } finally {
      release();
    }
  }

  /** Template names capsules on this host use (running, paused, hibernated, pooled). */
  templatesInUse(): string[] {
    return [...new Set([...[...this.records.values()].map((r) => r.template), ...this.pool.templates()])];
  }

  /** Removes image templates and cached layers nothing uses, unused for `olderThanMs` (default: the host's keep setting). */
  async pruneImages(olderThanMs?: number): Promise<PruneReport> {
    const prune = this.deps.templates.pruneImages;
    if (!prune) throw new FailedPreconditionError('this host has no container image cache');
    return prune({ inUse: () => this.templatesInUse(), ...(olderThanMs !== undefined ? { olderThanMs } : {}) });
  }

  private async createHeld(input: CreateCapsuleInput, onProgress?: (line: string) => void): Promise<CapsuleRecord> {
    let id = input.id || newCapsuleId();
    if (!CAPSULE_ID_RE.test(id))
      throw new InvalidArgumentError(`capsule id "${id}" is invalid: expected cl- and 4-32 base36 characters`);
    if (this.records.has(id)) throw new AlreadyExistsError(`capsule ${id} already exists on this host`);
    const templateName = input.template || CAPSULE_DEFAULTS.template;
    checkTemplateName(templateName);
    const limits = hostLimits();
    const runtimeName = input.runtime || this.deps.defaultRuntime;
    const runtime = this.deps.runtimes.get(runtimeName);
    if (!runtime) {
      throw new InvalidArgumentError(
        `runtime "${runtimeName}" is not available here; available: ${[...this.deps.runtimes.keys()].join(', ')}`,
      );
    }
    const envs = input.envs ?? {};
    const metadata = input.metadata ?? {};
    const networkPolicy = this.checkNetworkPolicy(input.network);
    const timeoutSec = input.timeoutSec ?? CAPSULE_DEFAULTS.timeoutSec;
    const volumes = input.volumes ?? [];
    checkVolumeMounts(runtime, volumes);

    let template: TemplateInfo;
    const known = await this.deps.templates.get(templateName);
    if (!known && !this.deps.templates.builtIns().includes(templateName)) throw new TemplateNotFoundError(templateName);
    template = known ?? (await this.deps.templates.ensure(templateName, onProgress));
    if (template.kind !== 'base' && !template.runtimes.includes(runtimeName)) {
      throw new InvalidArgumentError(
        `template "${templateName}" cannot run on the ${runtimeName} runtime (it supports ${template.runtimes.join(', ')})`,
      );
    }
    // Snapshot templates fix the machine shape they were taken with.
    const vcpus = template.vcpus ?? input.vcpus ?? DEFAULT_VCPUS;
    const memoryMb = template.memoryMb ?? input.memoryMb ?? DEFAULT_MEMORY_MB;
    // The contract's bounds were checked at the edge; what this host has is checked here.
    checkRange('vcpus', vcpus, CAPSULE_LIMITS.minVcpus, limits.maxVcpus);
    checkRange('memory_mb', memoryMb, CAPSULE_LIMITS.minMemoryMb, limits.maxMemoryMb);
    // Pooled capsules have the default network policy (claiming one only flips the internet switch).
    const pooled =
      runtimeName === this.deps.defaultRuntime && !networkPolicy && volumes.length === 0
        ? this.pool.take(templateName, vcpus, memoryMb)
        : undefined;
    // With no id asked for, a pooled capsule keeps the id it booted under: nothing to rename.
    if (pooled && !input.id) id = pooled.runtimeId;
    // A pooled capsule already holds its share; any other must fit. Checked with no await before
    // the record is added, so concurrent creates cannot all pass on the same count.
    if (!pooled) this.assertRoom();

    const now = Date.now();
    const rec: CapsuleRecord = {
      id,
      template: templateName,
      runtime: runtimeName,
      state: 'starting',
      vcpus,
      memoryMb,
      createdAt: now,
      expiresAt: timeoutSec > 0 ? now + timeoutSec * 1000 : 0,
      timeoutSec,
      timeoutAction: input.timeoutAction ?? 'destroy',
      metadata,
      envs,
      internet: input.internet ?? CAPSULE_DEFAULTS.internet,
      ...(networkPolicy ? { networkPolicy } : {}),
      envdAccessToken: input.envdAccessToken || newAccessToken(),
      ...(input.defaultUser ? { defaultUser: input.defaultUser } : {}),
      ...(input.defaultWorkdir ? { defaultWorkdir: input.defaultWorkdir } : {}),
      ...(volumes.length ? { volumes } : {}),
      address: '',
    };
    // With no await before the record is added: two creates cannot both take a VM's volume.
    assertVolumesFree(this.records.values(), { id, block: runtime.volumeMounts === 'block' }, rec.volumes, (r) =>
      this.blockVolumes(r),
    );
    this.records.set(id, rec);
    try {
      await this.boot(rec, runtime, pooled, input.inheritedEnvdToken);
      // Immediate for a pooled capsule (its services answered before it was pooled).
      await waitForReadyPorts(rec.address, template.readyPorts);
      this.move(rec, 'running', 'start');
      await this.store.save(rec);
      this.watchCapsule(rec);
      this.armReaper(rec.expiresAt);
      this.log('info', 'capsule created', { id, template: templateName, runtime: runtimeName, ms: Date.now() - now });
      return rec;
    } catch (err) {
      this.records.delete(id);
      await this.releaseResources(rec).catch(() => undefined);
      await this.store.remove(id);
      const why = err instanceof Error ? err.message : String(err);
      const message = why.includes(id) ? why : `capsule ${id} failed to start: ${why}`;
      // A full host keeps its class: the service answers resource_exhausted, not internal.
      if (err instanceof HostCapacityError) throw new HostCapacityError(message, err.resource);
      // A request the runtime found wrong for this template (a volume path over a symlink) stays a 400,
      // a volume another VM holds a 409.
      if (err instanceof FailedPreconditionError) throw new FailedPreconditionError(message);
      throw err instanceof InvalidArgumentError ? new InvalidArgumentError(message) : new Error(message);
    }
  }

  /** Network, runtime, then envd's /init with the access token and environment. */
  private async boot(
    rec: CapsuleRecord,
    runtime: CapsuleRuntime,
    pooled?: PooledCapsule,
    inheritedEnvdToken?: string,
  ): Promise<void> {
    const metadata = { WRENN_SANDBOX_ID: rec.id, WRENN_TEMPLATE_ID: rec.template };
    if (pooled) {
      try {
        await this.claim(rec, pooled, metadata);
        rec.fromWarmPool = true;
        return;
      } catch (err) {
        // A pooled capsule that died (or failed its claim) is dropped; this create boots afresh.
        this.log('warn', 'warm-pool capsule could not be claimed; booting a new one', {
          id: rec.id,
          runtimeId: pooled.runtimeId,
          err: String(err),
        });
        this.envd.get(rec.id)?.close();
        this.envd.delete(rec.id);
        await this.releaseRuntime(this.deps.defaultRuntime, pooled.runtimeId, pooled.handle).catch(() => undefined);
        delete rec.runtimeId;
        delete rec.handle;
        delete rec.network;
        rec.address = '';
      }
    }
    // The forwarding rule (an iptables run) is set while the capsule starts.
    rec.network = await this.deps.network.create(rec.id, {
      internet: rec.internet,
      metadata,
      deferFirewall: true,
      ...(rec.networkPolicy ? { policy: rec.networkPolicy } : {}),
    });
    rec.address = rec.network.capsuleIp;
    const firewall = this.deps.network.ready?.(rec.id);
    firewall?.catch(() => undefined);
    rec.handle = await runtime.create({
      id: rec.id,
      template: rec.template,
      vcpus: rec.vcpus,
      memoryMb: rec.memoryMb,
      envs: rec.envs,
      internet: rec.internet,
      metadata: { ...metadata },
      network: rec.network,
      envdInit: this.envdInitOf(rec),
      volumes: await volumeSources(this.volumes, rec.volumes, {
        kind: runtime.volumeMounts,
        capsuleId: rec.id,
      }),
    });
    rec.address = rec.handle.address || rec.address;
    if (rec.handle.envdInitialized) this.openEnvd(rec);
    else await this.initEnvd(rec, false, inheritedEnvdToken);
    await firewall;
    await this.trustEgressCa(rec);
  }

  /**
   * Puts the egress proxy's CA into the trust store of a capsule with `rules` (Debian-style
   * templates), so HTTPS to those domains verifies through the proxy; a failure is logged only
   * (the capsule's clients then refuse the proxy's certificate, failing closed).
   */
  private async trustEgressCa(rec: CapsuleRecord): Promise<void> {
    const pem = this.deps.network.egressCaPem;
    if (!pem || Object.keys(rec.networkPolicy?.rules ?? {}).length === 0) return;
    if (rec.state !== 'running' && rec.state !== 'starting') return; // a paused capsule gets it at resume
    const client = createEnvdClient(rec.address, rec.envdAccessToken);
    try {
      const code = await runInCapsule(client, '/bin/sh', ['-c', TRUST_CA_SCRIPT, pem], 'root', 10_000);
      if (code !== 0) this.log('warn', 'could not add the egress CA to a capsule', { id: rec.id, code });
    } catch (err) {
      this.log('warn', 'could not add the egress CA to a capsule', { id: rec.id, err: String(err) });
    } finally {
      client.close();
    }
  }

  /** A network policy, checked against this host's settings; undefined when it has nothing in it. */
  private checkNetworkPolicy(input: CreateCapsuleInput['network']): CapsuleNetworkPolicy | undefined {
    const empty = (l: unknown[] | undefined) => l === undefined || l.length === 0;
    if (
      input === undefined ||
      (empty(input.allowOut) && empty(input.denyOut) && Object.keys(input.rules ?? {}).length === 0)
    )
      return undefined;
    if (!this.deps.network.checkPolicy)
      throw new InvalidArgumentError('network policies are not supported by this host');
    try {
      return this.deps.network.checkPolicy(input);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new InvalidArgumentError(message.startsWith('network') ? message : `network: ${message}`);
    }
  }

  /**
   * Replaces the egress policy of a capsule (running or paused; kept across pause, resume and an
   * agent restart with its record). New connections follow it at once.
   */
  async updateNetwork(id: string, input: CreateCapsuleInput['network']): Promise<CapsuleRecord> {
    return this.locked(id, async () => {
      const rec = this.get(id);
      if (rec.state !== 'running' && rec.state !== 'paused' && rec.state !== 'hibernated') {
        throw new FailedPreconditionError(
          `capsule ${id} is ${rec.state}; its network can be changed while running or paused`,
        );
      }
      const policy = this.checkNetworkPolicy(input);
      if (!this.deps.network.setPolicy)
        throw new InvalidArgumentError('network policies are not supported by this host');
      await this.deps.network.setPolicy(rec.runtimeId ?? rec.id, policy);
      if (policy) rec.networkPolicy = policy;
      else delete rec.networkPolicy;
      await this.store.save(rec);
      await this.trustEgressCa(rec);
      return rec;
    });
  }

  /**
   * Boots a capsule for the warm pool under an internal id; /init comes when it is claimed.
   * `signal` (the pool stops: the agent shuts down) ends it between steps and stops its waits; what
   * it made so far (network, runtime) is destroyed before it rejects. A template build it started
   * is not waited for (it finishes or is cleaned up by the next build).
   */
  private async bootPooled(template: string, signal: AbortSignal): Promise<PooledCapsule> {
    // The pool counts this boot as held already; a full host does not refill its pool.
    this.assertRoom(1);
    const runtimeId = newCapsuleId();
    const runtime = this.runtimeOf({ runtime: this.deps.defaultRuntime } as CapsuleRecord);
    const metadata = { WRENN_SANDBOX_ID: runtimeId, WRENN_TEMPLATE_ID: template };
    // The template first (a first use builds it, which may take minutes): a shutdown does not wait for it.
    if (!(await this.deps.templates.get(template)))
      await untilAborted(this.deps.templates.ensure(template), signal, `warm-pool boot of ${template}`);
    signal.throwIfAborted();
    const network = await this.deps.network.create(runtimeId, { internet: true, metadata });
    let handle: RuntimeHandle | undefined;
    try {
      signal.throwIfAborted();
      handle = await runtime.create({
        id: runtimeId,
        template,
        vcpus: DEFAULT_VCPUS,
        memoryMb: DEFAULT_MEMORY_MB,
        envs: {},
        internet: true,
        metadata,
        network,
      });
      this.exits.watch(poolKey(runtimeId), runtime, handle, (reason) => {
        if (this.pool.drop(runtimeId))
          this.log('error', 'warm-pool capsule died; dropped and replaced', { runtimeId, template, reason });
      });
      signal.throwIfAborted();
      const address = handle.address || network.capsuleIp;
      const what = `warm-pool capsule ${runtimeId}`;
      await untilAborted(waitForEnvd(address, ENVD_BOOT_TIMEOUT_MS), signal, what);
      await untilAborted(warmUpEnvd(address), signal, what);
      const readyPorts = (await this.deps.templates.get(template))?.readyPorts;
      await untilAborted(waitForReadyPorts(address, readyPorts), signal, what);
      return { runtimeId, template, vcpus: DEFAULT_VCPUS, memoryMb: DEFAULT_MEMORY_MB, handle, network, address };
    } catch (err) {
      // Whatever it made goes (a boot that failed or was aborted after its runtime started, too).
      if (handle) await this.releaseRuntime(this.deps.defaultRuntime, runtimeId, handle).catch(() => undefined);
      else await this.deps.network.destroy(runtimeId).catch(() => undefined);
      throw err;
    }
  }

  /** Gives a pooled capsule its user-visible identity: metadata, network policy, envd /init, hostname. */
  private async claim(rec: CapsuleRecord, p: PooledCapsule, metadata: Record<string, string>): Promise<void> {
    // From here the capsule is watched as the user's (create() watches it once it runs).
    this.exits.unwatch(poolKey(p.runtimeId));
    rec.runtimeId = p.runtimeId;
    rec.handle = p.handle;
    rec.network = p.network;
    rec.address = p.address;
    const runtime = this.runtimeOf(rec);
    const renamed = rec.id !== p.runtimeId;
    // All independent: done together so a claim costs one round of each.
    await Promise.all([
      renamed ? this.deps.network.setMetadata?.(p.runtimeId, metadata) : undefined,
      rec.internet ? undefined : this.deps.network.setInternet?.(p.runtimeId, false),
      this.initEnvd(rec, true),
      // The hostname is the capsule id; a pooled capsule was booted under its internal one.
      !renamed ? undefined : runtime.setHostname ? runtime.setHostname(p.handle, rec.id) : this.setHostnameInside(rec),
    ]);
  }

  private async setHostnameInside(rec: CapsuleRecord): Promise<void> {
    const client = createEnvdClient(rec.address, rec.envdAccessToken);
    try {
      const code = await runInCapsule(client, 'hostname', [rec.id]);
      if (code !== 0) this.log('warn', 'could not set the hostname of a pooled capsule', { id: rec.id, code });
    } finally {
      client.close();
    }
  }

  /**
   * envd's /init with the access token and environment. The client that sends it stays as the
   * capsule's envd client, so the first command reuses its connection. `knownUp`: envd already
   * answered (a pooled capsule), so no health polling first. `heldToken`: the token envd already
   * holds, when it is not the capsule's own (a VM restored from another capsule's memory).
   */
  private async initEnvd(rec: CapsuleRecord, knownUp = false, heldToken?: string): Promise<void> {
    if (!knownUp) await waitForEnvd(rec.address, ENVD_BOOT_TIMEOUT_MS);
    const client = this.openEnvd(rec);
    const res = await client.request('POST', '/init', {
      headers: { 'content-type': 'application/json', ...(heldToken ? { 'X-Access-Token': heldToken } : {}) },
      body: JSON.stringify({ ...this.envdInitOf(rec), timestamp: new Date().toISOString() }),
    });
    if (res.status !== 204 && res.status !== 200)
      throw new Error(`envd /init answered ${res.status}: ${res.body.toString()}`);
  }

  /** The capsule's envd client, replacing any earlier one. */
  private openEnvd(rec: CapsuleRecord): EnvdClient {
    this.envd.get(rec.id)?.close();
    const client = createEnvdClient(rec.address, rec.envdAccessToken);
    this.envd.set(rec.id, client);
    return client;
  }

  /** What envd's /init sets for this capsule (sent after boot, or handed to envd at start). */
  private envdInitOf(rec: CapsuleRecord): EnvdInit {
    return {
      envVars: {
        ...rec.envs,
        WRENN_SANDBOX_ID: rec.id,
        WRENN_TEMPLATE_ID: rec.template,
        E2B_SANDBOX: 'true',
        E2B_SANDBOX_ID: rec.id,
        E2B_TEMPLATE_ID: rec.template,
      },
      accessToken: rec.envdAccessToken ?? '',
      defaultUser: rec.defaultUser ?? 'user',
      defaultWorkdir: rec.defaultWorkdir ?? '/home/user',
    };
  }

  /** Deletes a volume of this host; refused while a capsule here mounts it. */
  async deleteVolume(volumeId: string): Promise<void> {
    assertVolumeUnused(this.records.values(), volumeId);
    await this.volumes.delete(volumeId);
  }

  async destroy(id: string): Promise<void> {
    await this.locked(id, async () => {
      const rec = this.get(id);
      this.move(rec, 'stopped', 'destroy');
      await this.releaseResources(rec);
      this.records.delete(id);
      this.metricsHistory.forget(id);
      await this.store.remove(id);
      this.log('info', 'capsule destroyed', { id });
      if (this.forks.isForkTemplate(rec.template)) this.forks.sweepSoon();
    });
  }

  /**
   * Copies a running capsule once and starts one capsule per target from the copy (fork.ts); each
   * fork succeeds or fails by itself. The source keeps running.
   */
  fork(sourceId: string, targets: readonly ForkTarget[]): Promise<ForkResult> {
    return this.forks.fork(sourceId, targets);
  }

  private async releaseResources(rec: CapsuleRecord): Promise<void> {
    this.exits.unwatch(rec.id);
    this.envd.get(rec.id)?.close();
    this.envd.delete(rec.id);
    const runtime = this.deps.runtimes.get(rec.runtime);
    let firstError: unknown;
    // The runtime first: a VM must release its disk and TAP before they are removed.
    if (runtime && rec.handle) await runtime.destroy(rec.handle).catch((e) => (firstError ??= e));
    await this.deps.network.destroy(rec.runtimeId ?? rec.id).catch((e) => (firstError ??= e));
    // A VM's volumes are free again once its VMM is gone (not before: it may still write them).
    // QEMU too: a VM an agent before 9p volumes started holds its volumes as disks (a no-op otherwise).
    if (!firstError && (this.blockVolumes(rec) || runtime?.volumeMounts === '9p'))
      for (const v of rec.volumes ?? [])
        await this.volumes.releaseFromVm(v.volumeId, rec.id).catch((e) => (firstError ??= e));
    if (firstError) throw firstError;
  }

  /** true when the capsule's runtime attaches volumes as block devices (a VM: it holds them alone). */
  private blockVolumes(rec: Pick<CapsuleRecord, 'runtime'>): boolean {
    return this.deps.runtimes.get(rec.runtime)?.volumeMounts === 'block';
  }

  private async releaseRuntime(
    runtimeName: RuntimeName,
    runtimeId: string,
    handle: CapsuleRecord['handle'],
  ): Promise<void> {
    this.exits.unwatch(poolKey(runtimeId));
    const runtime = this.deps.runtimes.get(runtimeName);
    if (runtime && handle) await runtime.destroy(handle).catch(() => undefined);
    await this.deps.network.destroy(runtimeId);
  }

  /**
   * Pauses a capsule. Without a mode the runtime's best is used: the cgroup freezer for namespaces,
   * a memory snapshot to disk (VMM stopped, memory freed) for VMs.
   */
  async pause(id: string, mode?: PauseMode): Promise<CapsuleRecord> {
    return this.locked(id, async () => {
      const rec = this.get(id);
      const target: CapsuleState = mode === 'hibernate' ? 'hibernated' : 'paused';
      assertMove(id, rec.state, target, 'pause');
      const runtime = this.runtimeOf(rec);
      const runtimeMode = mode && runtime.pauseModes.includes(mode) ? mode : runtime.pauseModes[0];
      if (!rec.handle || !runtimeMode) throw new Error(`capsule ${id} has no runtime handle`);
      // Hibernating ends the processes on purpose: not watched while pausing, again if they are kept.
      this.exits.unwatch(id);
      let result: Awaited<ReturnType<typeof runtime.pause>>;
      try {
        result = await runtime.pause(rec.handle, runtimeMode);
      } catch (err) {
        this.watchCapsule(rec);
        throw err;
      }
      if (result.processesKept) this.watchCapsule(rec);
      rec.pauseKeeps = result.keeps;
      this.envd.get(id)?.close();
      this.envd.delete(id);
      this.move(rec, result.processesKept ? 'paused' : 'hibernated', 'pause');
      await this.store.save(rec);
      return rec;
    });
  }

  async resume(id: string, timeoutSec?: number): Promise<CapsuleRecord> {
    return this.locked(id, async () => {
      const rec = this.get(id);
      assertMove(id, rec.state, 'running', 'resume');
      const runtime = this.runtimeOf(rec);
      if (!rec.handle) throw new Error(`capsule ${id} has no runtime handle`);
      const wasHibernated = rec.state === 'hibernated';
      // A restart binds the volumes again: each must be mounted on the host (after a reboot too).
      if (wasHibernated)
        await volumeSources(this.volumes, rec.volumes, { kind: runtime.volumeMounts, capsuleId: rec.id });
      rec.handle = await runtime.resume(rec.handle);
      rec.address = rec.handle.address || rec.address;
      // A hibernated capsule restarted envd, which needs its token and environment again.
      if (wasHibernated) await this.initEnvd(rec);
      if (timeoutSec !== undefined && timeoutSec > 0) {
        rec.timeoutSec = timeoutSec;
      }
      rec.expiresAt = rec.timeoutSec > 0 ? Date.now() + rec.timeoutSec * 1000 : 0;
      this.move(rec, 'running', 'resume');
      await this.store.save(rec);
      this.watchCapsule(rec);
      this.armReaper(rec.expiresAt);
      // Rules given while it was paused, or a disk-only pause: its trust store gets the egress CA now (idempotent).
      await this.trustEgressCa(rec);
      return rec;
    });
  }

  /** Resets the inactivity timer; optionally sets a new timeout. */
  async ping(id: string, timeoutSec?: number): Promise<CapsuleRecord> {
    const rec = this.get(id);
    if (rec.state !== 'running')
      throw new FailedPreconditionError(`capsule ${id} is ${rec.state}; only running capsules can be pinged`);
    if (timeoutSec !== undefined) {
      rec.timeoutSec = timeoutSec;
    }
    rec.expiresAt = rec.timeoutSec > 0 ? Date.now() + rec.timeoutSec * 1000 : 0;
    await this.store.save(rec);
    this.armReaper(rec.expiresAt);
    return rec;
  }

  async stats(id: string): Promise<CapsuleStats> {
    const rec = this.get(id);
    if (!rec.handle) throw new FailedPreconditionError(`capsule ${id} has no runtime yet`);
    return this.runtimeOf(rec).stats(rec.handle);
  }

  async snapshot(id: string, name: string): Promise<TemplateInfo> {
    checkTemplateName(name);
    if (await this.deps.templates.get(name)) throw new AlreadyExistsError(`a template named "${name}" already exists`);
    return this.locked(id, async () => {
      const rec = this.get(id);
      if (rec.state !== 'running' && rec.state !== 'paused') {
        throw new FailedPreconditionError(
          `capsule ${id} is ${rec.state}; snapshots are taken of running or paused capsules`,
        );
      }
      // Its memory has the volumes mounted: a capsule (or fork) of it would restore a kernel that
      // believes it holds them (a block disk: a second kernel on one ext4; 9p: QEMU refuses to
      // migrate a VM with a 9p export mounted).
      const vmVolumes = this.runtimeOf(rec).volumeMounts;
      if ((vmVolumes === 'block' || vmVolumes === '9p') && rec.volumes?.length)
        throw new FailedPreconditionError(
          `capsule ${id} is a VM with volumes mounted; its memory cannot be written out, so it cannot be snapshotted or forked`,
        );
      if (!rec.handle) throw new Error(`capsule ${id} has no runtime handle`);
      await this.runtimeOf(rec).snapshot(rec.handle, name);
      const t = await this.deps.templates.get(name);
      if (!t) throw new Error(`snapshot ${name} was not recorded by the template store`);
      return t;
    });
  }

  /** Deletes a template unless a capsule on this host still runs from it. */
  async deleteTemplate(name: string): Promise<void> {
    const users = this.list().filter((r) => r.template === name);
    if (users.length > 0) {
      throw new TemplateInUseError(
        `template "${name}" is used by ${users.length} capsule(s) (${users
          .slice(0, 3)
          .map((r) => r.id)
          .join(', ')}); destroy them first`,
      );
    }
    await this.deps.templates.delete(name);
  }

  /**
   * Calls `fn` for each state change the agent makes by itself (a timeout's pause or destroy, a
   * capsule found dead), after it is recorded: the control plane's watch stream pushes them.
   */
  onStateChange(fn: (change: AgentStateChange) => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  private changed(change: AgentStateChange): void {
    for (const fn of this.changeListeners) {
      try {
        fn(change);
      } catch (err) {
        this.log('error', 'state change listener failed', { id: change.id, err: String(err) });
      }
    }
  }

  /** Calls `fn` each time a capsule is found dead (state `error`, `error` holds why). */
  onCapsuleExit(fn: (rec: CapsuleRecord) => void): () => void {
    this.exitListeners.add(fn);
    return () => this.exitListeners.delete(fn);
  }

  private watchCapsule(rec: CapsuleRecord): void {
    const runtime = this.deps.runtimes.get(rec.runtime);
    if (runtime) this.exits.watch(rec.id, runtime, rec.handle, (reason) => void this.capsuleExited(rec.id, reason));
  }

  /** The capsule's processes ended by themselves: `error`, with why, unless an operation since explains it. */
  private async capsuleExited(id: string, reason: string): Promise<void> {
    await this.locked(id, async () => {
      const rec = this.records.get(id);
      if (!rec || (rec.state !== 'running' && rec.state !== 'paused')) return;
      const runtime = this.runtimeOf(rec);
      if (rec.handle && (await runtime.isAlive(rec.handle).catch(() => false))) return; // a later boot runs
      rec.error = reason;
      this.move(rec, 'error', 'mark dead');
      this.envd.get(id)?.close();
      this.envd.delete(id);
      await this.store.save(rec);
      this.log('error', 'capsule died: its envd/init exited', { id, reason });
      for (const fn of this.exitListeners) fn(rec);
      this.changed({ id, state: 'error', cause: 'exited', error: reason });
    }).catch((err: unknown) => this.log('error', 'could not record a dead capsule', { id, err: String(err) }));
  }

  private move(rec: CapsuleRecord, to: CapsuleState, action: string): void {
    assertMove(rec.id, rec.state, to, action);
    rec.state = to;
  }

  /** Serialises lifecycle operations per capsule. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    this.locks.set(id, run);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === run) this.locks.delete(id);
    }
  }

  /**
   * Arms the reaper's one timer for the earliest deadline. With `at` (a deadline just set), only
   * when that is earlier than the timer's; without, from every running capsule (after a round).
   * So idle capsules cost no periodic work: nothing runs until a deadline is due. A deadline moved
   * later (ping) leaves the timer early; its round finds nothing due and re-arms.
   */
  private armReaper(at?: number): void {
    if (this.stopped) return;
    let due = at;
    if (due === undefined) {
      due = Infinity;
      for (const rec of this.records.values())
        if (rec.state === 'running' && rec.expiresAt > 0 && rec.expiresAt < due) due = rec.expiresAt;
    } else if (due === 0 || due >= this.reaperDue) return;
    if (this.reaper) clearTimeout(this.reaper);
    this.reaper = undefined;
    this.reaperDue = due;
    if (due === Infinity) return;
    // setTimeout's delay is capped at 2^31-1 ms; a later deadline is re-armed when that fires.
    this.reaper = setTimeout(
      () => {
        this.reaper = undefined;
        this.reaperDue = Infinity;
        this.reap();
        this.armReaper();
      },
      Math.min(Math.max(0, due - Date.now()), 2 ** 31 - 1),
    );
    this.reaper.unref();
  }

  /** Expires running capsules whose timeout passed: pause or destroy as each asked. */
  private reap(): void {
    const now = Date.now();
    for (const rec of this.records.values()) {
      if (rec.state !== 'running' || rec.expiresAt === 0 || rec.expiresAt > now) continue;
      rec.expiresAt = 0; // once; a failure below is logged, not retried in a loop
      this.store.touch();
      const act =
        rec.timeoutAction === 'pause'
          ? this.pause(rec.id)
          : rec.timeoutAction === 'hibernate'
            ? this.pause(rec.id, 'hibernate')
            : this.destroy(rec.id).then(() => undefined);
      act.then(
        (paused) => {
          this.log('info', 'capsule timed out', { id: rec.id, action: rec.timeoutAction });
          // A runtime without a disk-only pause keeps the processes (state paused, not hibernated).
          const state = paused ? (paused.state === 'hibernated' ? 'hibernated' : 'paused') : 'stopped';
          this.changed({ id: rec.id, state, cause: 'timeout' });
        },
        (err: unknown) => this.log('error', 'timeout action failed', { id: rec.id, err: String(err) }),
      );
    }
  }
}

/** A state change the agent made by itself, as pushed to the control plane. */
export interface AgentStateChange {
  id: string;
  state: 'paused' | 'hibernated' | 'stopped' | 'error';
  cause: 'timeout' | 'exited';
  error?: string;
}

const poolKey = (runtimeId: string) => `pool:${runtimeId}`;
