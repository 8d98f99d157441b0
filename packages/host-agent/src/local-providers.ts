// Wires the manager to this host's real layers: the namespace runtime, the template store under
// <dataDir>/images, and the capsule network (netns + veth + NAT) with its metadata endpoint.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { type CapacityConfig, capacityConfig } from './capacity/capacity.js';
import { applyHostSettings, hostSettings, type TuningLog } from './host-tuning.js';
import { TemplateNotFoundError } from './manager/errors.js';
import type { NetworkProvider, TemplateInfo, TemplateProvider } from './manager/types.js';
import {
  loadEgressCa,
  type MetadataServer,
  NetworkManager,
  type NetworkOptions,
  startMetadataHttpServer,
} from './network/index.js';
import { ImageGc, type ImageGcSettings, imageGcSettings } from './oci/image-gc.js';
import { ensureImageTemplate, ociCacheDir, parseImageReference } from './oci/index.js';
import { type TemplateManifest, TemplateStore } from './rootfs/index.js';
import { createFirecrackerRuntime } from './runtimes/firecracker/index.js';
import { NamespaceRuntime } from './runtimes/namespace/index.js';
import { createQemuRuntime } from './runtimes/qemu/index.js';
import type { CapsuleRuntime, RuntimeName } from './runtimes/runtime.js';
import { probeHost, selectRuntimes } from './runtimes/select-runtime.js';

/**
 * `hostRuntimes`: a base or image template runs on every runtime of the host (VMs get a disk built
 * from its layers on first use, vm/images/rootfs-image.ts).
 */
export function toTemplateInfo(m: TemplateManifest, hostRuntimes: readonly RuntimeName[] = []): TemplateInfo {
  return {
    name: m.name,
    kind: m.kind,
    runtimes: m.kind === 'base' || m.kind === 'image' ? [...new Set([...m.runtimes, ...hostRuntimes])] : m.runtimes,
    sizeBytes: m.size,
    createdAt: Date.parse(m.created_at) || 0,
    ...(m.parent ? { parent: m.parent } : {}),
    ...(m.readyPorts?.length ? { readyPorts: m.readyPorts } : {}),
  };
}

/**
 * `ociDir`: the host's image layer cache; with it the provider makes templates from images and
 * collects what nothing uses any more (`gcSettings`, default from the environment).
 */
export function templateProvider(
  store: TemplateStore,
  hostRuntimes: readonly RuntimeName[] = [],
  ociDir?: string,
  gcSettings?: ImageGcSettings,
): TemplateProvider {
  const gc = ociDir ? new ImageGc(store, ociDir, gcSettings ?? imageGcSettings()) : undefined;
  return {
    ...(ociDir && gc
      ? {
          async fromImage(image, opts) {
            const credentials = opts.credentials
              ? { [parseImageReference(image).registry]: opts.credentials }
              : undefined;
            // Under the collector's shared side: no pass removes a layer between pull and template.
            const { template, pulled } = await gc.shared(() =>
              ensureImageTemplate(store, image, {
                cacheDir: ociDir,
                ...(credentials ? { credentials } : {}),
                ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
              }),
            );
            return {
              template: toTemplateInfo(template, hostRuntimes),
              reference: pulled.reference,
              manifestDigest: pulled.manifestDigest,
              defaults: pulled.defaults,
              downloadedBytes: pulled.downloadedBytes,
              cachedLayers: pulled.cachedLayers,
              layerCount: pulled.layerDirs.length,
            };
          },
          hold: (name) => gc.hold(name),
          pruneImages: (opts) => gc.prune(opts),
          startImageGc: (inUse, log) => gc.startTimer(inUse, log),
          stopImageGc: () => gc.stopTimer(),
        }
      : {}),
    async ensure(name, onProgress) {
      return toTemplateInfo(await store.ensureTemplate(name, onProgress ? { onProgress } : {}), hostRuntimes);
    },
    async get(name) {
      if (gc?.doomed(name)) return undefined; // being removed by the image cache's collector
      const m = await store.get(name).catch(() => undefined);
      return m ? toTemplateInfo(m, hostRuntimes) : undefined;
    },
    async list() {
      const have = (await store.listTemplates()).map((m) => toTemplateInfo(m, hostRuntimes));
      // Built-in templates are listed even before their first build.
      for (const name of store.recipeNames()) {
        if (!have.some((t) => t.name === name))
          have.push({
            name,
            kind: 'base',
            runtimes: [...new Set(['namespace' as const, ...hostRuntimes])],
            sizeBytes: 0,
            createdAt: 0,
          });
      }
      return have;
    },
    async delete(name) {
      if (!(await store.get(name).catch(() => undefined))) throw new TemplateNotFoundError(name);
      // The store refuses built-ins and templates others are stacked on with failed_precondition.
      await store.deleteTemplate(name);
    },
    builtIns: () => store.recipeNames(),
  };
}

/** `egressCaPem`: the egress proxy's CA, which capsules with rules are made to trust. */
export function networkProvider(net: NetworkManager, egressCaPem?: string): NetworkProvider {
  return {
    ...(egressCaPem ? { egressCaPem } : {}),
    async create(id, opts) {
      const n = await net.create({
        id,
        internet: opts.internet,
        metadata: opts.metadata,
        deferFirewall: opts.deferFirewall,
        ...(opts.policy ?? {}),
      });
      return { ...n };
    },
    checkPolicy(policy) {
      const p = net.checkPolicy(policy);
      return {
        allowOut: p.allowOut,
        ...(p.denyOut.length ? { denyOut: p.denyOut } : {}),
        ...(Object.keys(p.rules).length ? { rules: p.rules } : {}),
      };
    },
    async setPolicy(id, policy) {
      await net.setPolicy(id, policy ?? {});
    },
    ready: (id) => net.firewallReady(id),
    destroy: (id) => net.destroy(id),
    async setInternet(id, on) {
      await net.setInternet(id, on);
    },
    setMetadata: (id, values) => net.setMetadata(id, values),
    async cleanupStale(known) {
      await net.cleanupStale(known);
    },
  };
}

export interface LocalLayers {
  runtimes: Map<RuntimeName, CapsuleRuntime>;
  defaultRuntime: RuntimeName;
  /** One line per runtime: why it is or is not offered on this host (for the agent's log). */
  runtimeReasons?: string[];
  network: NetworkProvider;
  templates: TemplateProvider;
  templateStore: TemplateStore;
  networkManager: NetworkManager;
  metadataServer: MetadataServer;
  /** What the host can hold: the configured limits and the sizes of its address pool and uid block. */
  capacity?: { config: CapacityConfig; spareNetworks: () => number };
  close(): Promise<void>;
}

export interface LocalLayerOptions {
  /** Network settings (tests give each agent its own pool and names). */
  network?: Partial<NetworkOptions>;
  /** Where templates live (default <dataDir>/images); tests share one cache so `base` is built once. */
  imagesDir?: string;
  /** The container image layer cache (default <dataDir>/oci). */
  ociDir?: string;
  /** Its garbage collection (default from WRENN_IMAGE_* in the environment). */
  imageGc?: ImageGcSettings;
  /**
   * cgroup parent of this agent's capsules (default from WRENN_NAME_PREFIX, else "wrenn"). Agents on one machine need distinct
   * parents: each removes, at start, groups under its parent that it does not know.
   */
  cgroupParent?: string;
  /** Each namespace capsule's disk in MiB (default WRENN_CAPSULE_DISK_MB, else 10240; 0 = no limit). */
  diskMb?: number;
  /** Free MiB the host keeps beyond a new capsule's whole disk (default WRENN_DISK_RESERVE_MB, else 1024). */
  diskReserveMb?: number;
  /** Offer the QEMU runtime when qemu-system-x86_64 is installed (default true). */
  qemu?: boolean;
  /** Offer the Firecracker runtime, and make it the default, where KVM is usable and the binary found (default true). */
  firecracker?: boolean;
  /** The firecracker binary (default WRENN_FIRECRACKER_BIN, else `firecracker` on PATH). */
  firecrackerBinary?: string;
  /** The default runtime where Firecracker cannot run (default 'namespace'). */
  defaultRuntime?: RuntimeName;
  /** Capsules the host holds at most and memory it keeps free (default WRENN_MAX_CAPSULES, WRENN_MEMORY_RESERVE_MB). */
  capacity?: { maxCapsules?: number; memoryReserveMb?: number };
  /** Where the host settings applied at start are logged (default: a pino logger of its own). */
  log?: TuningLog;
}

/**
 * Removes base template layers no template and no capsule record of this agent uses (a paused or
 * hibernated capsule names its lower layers by path in its record, <dataDir>/capsules/<id>.json).
 */
export async function removeUnusedTemplateLayers(
  store: TemplateStore,
  dataDir: string,
  log: TuningLog,
): Promise<string[]> {
  const dir = join(dataDir, 'capsules');
  const records: string[] = [];
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (n.endsWith('.json')) records.push(await readFile(join(dir, n), 'utf8').catch(() => ''));
  }
  const removed = await store.removeUnusedLayers((layer) => records.some((r) => r.includes(JSON.stringify(layer))));
  for (const layer of removed) log.info({ layer }, 'removed an old template layer nothing uses (its recipe changed)');
  return removed;
}

/**
 * WRENN_NAME_PREFIX (1-4 lower-case letters): the names an agent gives what it makes on the machine
 * - capsule network namespaces `<p>-<id>`, veths `<p><slot>`, iptables chains `<P>-…`, cgroup
 * parent `wrenn-<p>` - instead of `wrenn-`, `wr`, `WRENN` and `wrenn`. An agent removes, at start,
 * every namespace and cgroup of its names that it does not know, so two agents on one machine
 * (simulated hosts, each in a network namespace of its own) need distinct prefixes.
 */
export function namePrefixFromEnv(
  value = process.env.WRENN_NAME_PREFIX,
): { names: NonNullable<NetworkOptions['names']>; cgroupParent: string } | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^[a-z]{1,4}$/.test(value)) throw new Error(`WRENN_NAME_PREFIX="${value}" must be 1-4 lower-case letters`);
  return {
    names: { netnsPrefix: `${value}-`, ifPrefix: value, chainPrefix: value.toUpperCase() },
    cgroupParent: `wrenn-${value}`,
  };
}

export async function createLocalLayers(dataDir: string, opts: LocalLayerOptions = {}): Promise<LocalLayers> {
  const prefixed = namePrefixFromEnv();
  const netOpts = { ...(prefixed ? { names: prefixed.names } : {}), ...(opts.network ?? {}) };
  const cgroupParent = opts.cgroupParent ?? prefixed?.cgroupParent;
  const log = opts.log ?? pino({ base: { svc: 'host-agent' } });
  // Before any network namespace exists: each one created later gets its own TCP/UDP hash tables.
  await applyHostSettings(hostSettings(), log);
  const templateStore = new TemplateStore({ imagesDir: opts.imagesDir ?? join(dataDir, 'images') });
  const networkManager = new NetworkManager({ dataDir, ...netOpts });
  await networkManager.init();
  // Created at first start under the data dir; its certificate goes into capsules with rules.
  const egressCa = await loadEgressCa(dataDir);
  const egressProxy = await networkManager.startEgressProxy({
    ca: egressCa,
    log: (level, msg, fields) => log[level](fields, msg),
  });
  const metadataServer = await startMetadataHttpServer({
    port: networkManager.metadataPort,
    host: '0.0.0.0',
    lookup: (addr) => networkManager.metadataFor(addr),
  });
  const diskMb =
    opts.diskMb ?? (process.env.WRENN_CAPSULE_DISK_MB ? Number(process.env.WRENN_CAPSULE_DISK_MB) : undefined);
  const diskReserveMb =
    opts.diskReserveMb ?? (process.env.WRENN_DISK_RESERVE_MB ? Number(process.env.WRENN_DISK_RESERVE_MB) : undefined);
  const ns = new NamespaceRuntime({
    dataDir,
    templates: templateStore,
    // The name servers the firewall keeps open are the ones capsules are told about.
    dnsServers: networkManager.dnsServers,
    ...(cgroupParent ? { cgroupParent } : {}),
    ...(diskMb !== undefined ? { diskMb } : {}),
    ...(diskReserveMb !== undefined ? { diskReserveMb } : {}),
  });
  // Paid once here rather than by the first capsule: compiling the init helper, resolving node's libraries.
  await ns.prepare();
  await templateStore.cleanupLeftovers();
  // Old builds of base templates (recipe versions, template-store.ts) that nothing uses any more.
  // Only in an images dir of this agent's own: agents sharing one (tests) do not see each other's capsules.
  if (!opts.imagesDir) await removeUnusedTemplateLayers(templateStore, dataDir, log);
  const runtimes = new Map<RuntimeName, CapsuleRuntime>([['namespace', ns]]);
  // Firecracker where KVM can run a VM and its binary is installed (then the default); QEMU where
  // installed (KVM when usable, else software emulation); otherwise the configured default.
  const facts = await probeHost({ firecrackerBinary: opts.firecrackerBinary ?? process.env.WRENN_FIRECRACKER_BIN });
  const policy = {
    configuredDefault: opts.defaultRuntime ?? 'namespace',
    qemu: opts.qemu,
    firecracker: opts.firecracker,
  };
  let choice = selectRuntimes(facts, policy);
  if (choice.offered.includes('firecracker')) {
    const fc = createFirecrackerRuntime({ dataDir, store: templateStore, firecrackerBinary: facts.firecrackerBinary });
    try {
      await fc.version(); // `firecracker --version`: a binary that does not run or is too old is not offered
      runtimes.set('firecracker', fc);
    } catch (err) {
      choice = selectRuntimes(facts, { ...policy, firecracker: false });
      choice.reasons.push(`firecracker: not offered (${(err as Error).message})`);
    }
  }
  if (choice.offered.includes('qemu')) {
    runtimes.set('qemu', createQemuRuntime({ dataDir, store: templateStore }));
  }
  const capacity = {
    // One uid range and one address slot per capsule; pre-built networks hold slots too.
    config: capacityConfig({ idRanges: ns.idRanges.config.count, netSlots: networkManager.pool.slots }, opts.capacity),
    spareNetworks: () => networkManager.warmCount,
  };
  return {
    runtimes,
    defaultRuntime: choice.defaultRuntime,
    capacity,
    runtimeReasons: choice.reasons,
    network: networkProvider(networkManager, egressCa.certPem),
    templates: templateProvider(templateStore, [...runtimes.keys()], opts.ociDir ?? ociCacheDir(dataDir), opts.imageGc),
    templateStore,
    networkManager,
    metadataServer,
    close: async () => {
      // Pre-built networks belong to no capsule: they go with the agent (capsules stay).
      await Promise.all([
        metadataServer.close(),
        egressProxy.close(),
        networkManager.setWarmPool(0),
        ...[...runtimes.values()].map((r) => r.close?.()),
      ]);
      // Nothing left to keep: no firewall chain outlives the agent either.
      await networkManager.uninstallIfUnused();
    },
  };
}
