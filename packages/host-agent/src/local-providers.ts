// Wires the manager to this host's real layers: the namespace runtime, the template store under
// <dataDir>/images, and the capsule network (netns + veth + NAT) with its metadata endpoint.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createQemuRuntime } from './runtimes/qemu/index.js';
import type { RuntimeName, CapsuleRuntime } from './runtimes/runtime.js';
import { NamespaceRuntime } from './runtimes/namespace/index.js';
import { TemplateStore, type TemplateManifest } from './rootfs/index.js';
import { NetworkManager, startMetadataHttpServer, type MetadataServer, type NetworkOptions } from './network/index.js';
import type { NetworkProvider, TemplateInfo, TemplateProvider } from './manager/types.js';
import { TemplateInUseError, TemplateNotFoundError } from './manager/errors.js';

export function toTemplateInfo(m: TemplateManifest): TemplateInfo {
  return {
    name: m.name,
    kind: m.kind,
    runtimes: m.runtimes,
    sizeBytes: m.size,
    createdAt: Date.parse(m.created_at) || 0,
    ...(m.parent ? { parent: m.parent } : {}),
  };
}

export function templateProvider(store: TemplateStore): TemplateProvider {
  return {
    async ensure(name, onProgress) {
      return toTemplateInfo(await store.ensureTemplate(name, onProgress ? { onProgress } : {}));
    },
    async get(name) {
      const m = await store.get(name).catch(() => undefined);
      return m ? toTemplateInfo(m) : undefined;
    },
    async list() {
      const have = (await store.listTemplates()).map(toTemplateInfo);
      // Built-in templates are listed even before their first build.
      for (const name of store.recipeNames()) {
        if (!have.some((t) => t.name === name)) have.push({ name, kind: 'base', runtimes: ['namespace'], sizeBytes: 0, createdAt: 0 });
      }
      return have;
    },
    async delete(name) {
      if (!(await store.get(name).catch(() => undefined))) throw new TemplateNotFoundError(name);
      try {
        await store.deleteTemplate(name);
      } catch (err) {
        // The store refuses built-ins and templates others are stacked on: the caller's move, not a fault.
        const msg = err instanceof Error ? err.message : String(err);
        if (/used by|parent|built-in|base template/i.test(msg)) throw new TemplateInUseError(msg);
        throw err;
      }
    },
    builtIns: () => store.recipeNames(),
  };
}

export function networkProvider(net: NetworkManager): NetworkProvider {
  return {
    async create(id, opts) {
      const n = await net.create({ id, internet: opts.internet, metadata: opts.metadata });
      return { ...n };
    },
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
  network: NetworkProvider;
  templates: TemplateProvider;
  templateStore: TemplateStore;
  networkManager: NetworkManager;
  metadataServer: MetadataServer;
  close(): Promise<void>;
}

export interface LocalLayerOptions {
  /** Network settings (tests give each agent its own pool and names). */
  network?: Partial<NetworkOptions>;
  /** Where templates live (default <dataDir>/images); tests share one cache so `base` is built once. */
  imagesDir?: string;
  /**
   * cgroup parent of this agent's capsules (default "wrenn"). Agents on one machine need distinct
   * parents: each removes, at start, groups under its parent that it does not know.
   */
  cgroupParent?: string;
  /** Offer the QEMU runtime when qemu-system-x86_64 is installed (default true). */
  qemu?: boolean;
}

function hasBinary(name: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => d && existsSync(join(d, name)));
}

export async function createLocalLayers(dataDir: string, opts: LocalLayerOptions = {}): Promise<LocalLayers> {
  const netOpts = opts.network ?? {};
  const templateStore = new TemplateStore({ imagesDir: opts.imagesDir ?? join(dataDir, 'images') });
  const networkManager = new NetworkManager({ dataDir, ...netOpts });
  await networkManager.init();
  const metadataServer = await startMetadataHttpServer({
    port: networkManager.metadataPort,
    host: '0.0.0.0',
    lookup: (addr) => networkManager.metadataFor(addr),
  });
  const ns = new NamespaceRuntime({ dataDir, templates: templateStore, ...(opts.cgroupParent ? { cgroupParent: opts.cgroupParent } : {}) });
  // Paid once here rather than by the first capsule: compiling the init helper, resolving node's libraries.
  await ns.prepare();
  await templateStore.cleanupLeftovers();
  const runtimes = new Map<RuntimeName, CapsuleRuntime>([['namespace', ns]]);
  // VMs where QEMU is installed (KVM when usable, else software emulation); namespace stays the default.
  if (opts.qemu !== false && hasBinary('qemu-system-x86_64')) {
    runtimes.set('qemu', createQemuRuntime({ dataDir, store: templateStore }));
  }
  return {
    runtimes,
    defaultRuntime: 'namespace',
    network: networkProvider(networkManager),
    templates: templateProvider(templateStore),
    templateStore,
    networkManager,
    metadataServer,
    close: () => metadataServer.close(),
  };
}
