// Per-capsule networking of the host agent. The free functions use one default NetworkManager,
// configured by the first createCapsuleNetwork({dataDir}) or explicitly by initNetwork().
import {
  type CapsuleNetwork,
  type CreateCapsuleNetworkOptions,
  NetworkManager,
  type NetworkOptions,
} from './manager.js';
import { type MetadataServer, startMetadataHttpServer } from './metadata-server.js';

export { type EgressCa, loadEgressCa, TRUST_CA_SCRIPT } from './egress-proxy/egress-ca.js';
export type { EgressProxy } from './egress-proxy/server.js';
export { METADATA_IP } from './firewall.js';
export { CAPSULE_IFNAME } from './links.js';
export {
  agentNetWarmPool,
  type CapsuleNetwork,
  type CreateCapsuleNetworkOptions,
  DEFAULT_METADATA_PORT,
  DEFAULT_NAMES,
  DEFAULT_POOL,
  DEFAULT_RATE_MBIT,
  NetworkManager,
  type NetworkNames,
  type NetworkOptions,
} from './manager.js';
export type { MetadataServer } from './metadata-server.js';

let current: NetworkManager | undefined;

/** Configures (once) and initialises the default manager. */
export async function initNetwork(opts: NetworkOptions): Promise<NetworkManager> {
  if (current && current.dataDir !== opts.dataDir) {
    throw new Error(`the network is already configured with dataDir ${current.dataDir}, not ${opts.dataDir}`);
  }
  current ??= new NetworkManager(opts);
  await current.init();
  return current;
}

function manager(): NetworkManager {
  if (!current)
    throw new Error(
      'network not initialised: call initNetwork({ dataDir }) or createCapsuleNetwork({ dataDir, ... }) first',
    );
  return current;
}

export async function createCapsuleNetwork(
  opts: CreateCapsuleNetworkOptions & { dataDir: string },
): Promise<CapsuleNetwork> {
  const { dataDir, ...rest } = opts;
  return (await initNetwork({ dataDir })).create(rest);
}

export const destroyCapsuleNetwork = (id: string): Promise<void> => manager().destroy(id);
export const setInternet = (id: string, on: boolean): Promise<CapsuleNetwork> => manager().setInternet(id, on);
export const listCapsuleNetworks = (): Promise<CapsuleNetwork[]> => manager().list();
export const getCapsuleNetwork = (id: string): Promise<CapsuleNetwork | undefined> => manager().get(id);
export const cleanupStaleNetworks = (knownIds: Iterable<string>) => manager().cleanupStale(knownIds);
/** Pre-builds networks so creates only claim one (see NetworkOptions.warmPool for automatic refill). */
export const prepareNetworks = (n: number): Promise<number> => manager().prepareNetworks(n);

/** Sets what http://169.254.169.254/ answers inside capsule `id` (e.g. WRENN_TEMPLATE_ID). */
export const registerMetadata = (id: string, values: Record<string, string>): Promise<void> =>
  manager().setMetadata(id, values);
export const unregisterMetadata = (id: string): Promise<void> => manager().setMetadata(id, {});

let metadataServer: MetadataServer | undefined;

/**
 * Starts the metadata server on the manager's metadata port (all addresses; the firewall lets
 * only capsules reach it). Call after initNetwork().
 */
export async function startMetadataServer(
  opts: { manager?: NetworkManager; host?: string } = {},
): Promise<MetadataServer> {
  if (metadataServer) return metadataServer;
  const m = opts.manager ?? manager();
  metadataServer = await startMetadataHttpServer({
    port: m.metadataPort,
    host: opts.host ?? '0.0.0.0',
    lookup: (addr) => m.metadataFor(addr),
  });
  return metadataServer;
}

export async function stopMetadataServer(): Promise<void> {
  const s = metadataServer;
  metadataServer = undefined;
  await s?.close();
}

export { startMetadataHttpServer };
