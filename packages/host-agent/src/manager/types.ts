// What the sandbox manager needs from the network and template layers, kept narrow so the
// manager can be driven by any runtime and tested without knowing how those layers work.

import type { EgressPolicy, NetworkRule } from '@wrenn/protocol';
import type { CapacityConfig } from '../capacity/capacity.js';
import type { PruneOptions, PruneReport } from '../oci/image-gc.js';
import type { ImageDefaults, RegistryCredentials } from '../oci/index.js';
import type { CapsuleRuntime, RuntimeHandle, RuntimeName } from '../runtimes/runtime.js';
import type { CapsuleState } from './state-machine.js';

export interface CapsuleNetworkInfo {
  /** Address where the host reaches envd and the capsule's ports. */
  capsuleIp: string;
  netnsPath?: string;
  [key: string]: unknown;
}

/**
 * A capsule's egress policy, normalised (the contract's EgressPolicy after the host's checks).
 * Non-global destinations stay closed unless the host lets them be opened.
 */
export interface CapsuleNetworkPolicy {
  /** IPv4 CIDRs, domains and *.domain patterns reachable whatever denyOut and the internet switch say. */
  allowOut: string[];
  /** IPv4 CIDRs refused (0.0.0.0/0: all but allowOut). */
  denyOut?: string[];
  /** Domain -> transforms of the egress proxy (header injection). */
  rules?: Record<string, NetworkRule[]>;
}

export interface NetworkProvider {
  /** `deferFirewall`: may return before forwarding is switched on; `ready(id)` then says when it is. */
  create(
    id: string,
    opts: {
      internet: boolean;
      metadata: Record<string, string>;
      deferFirewall?: boolean;
      policy?: CapsuleNetworkPolicy;
    },
  ): Promise<CapsuleNetworkInfo>;
  /** Validates and normalises a policy against this host's settings; throws (with why) when refused. */
  checkPolicy?(policy: EgressPolicy): CapsuleNetworkPolicy;
  /** The egress proxy's CA certificate (PEM): capsules with `rules` get it in their trust store. */
  egressCaPem?: string;
  /** Replaces a capsule's egress policy (checked first); new connections follow it at once. */
  setPolicy?(id: string, policy: CapsuleNetworkPolicy | undefined): Promise<void>;
  ready?(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  setInternet?(id: string, on: boolean): Promise<void>;
  /** Replaces what the capsule's metadata endpoint answers. */
  setMetadata?(id: string, values: Record<string, string>): Promise<void>;
  cleanupStale(knownIds: ReadonlySet<string>): Promise<void>;
}

export interface TemplateInfo {
  name: string;
  kind: 'base' | 'snapshot' | 'dockerfile' | 'image';
  runtimes: RuntimeName[];
  sizeBytes: number;
  createdAt: number;
  parent?: string;
  vcpus?: number;
  memoryMb?: number;
  /** TCP ports a service of the template listens on; a capsule is handed out once they accept. */
  readyPorts?: number[];
}

/** A host template made from a container image (oci/image-template.ts), with the image's run defaults. */
export interface ImageTemplateInfo {
  template: TemplateInfo;
  /** registry/repository[:tag]@digest as pulled. */
  reference: string;
  manifestDigest: string;
  defaults: ImageDefaults;
  downloadedBytes: number;
  cachedLayers: number;
  layerCount: number;
}

export interface TemplateProvider {
  /** The template for a container image, pulled on the way; credentials are for the image's registry. */
  fromImage?(
    image: string,
    opts: { credentials?: RegistryCredentials; onProgress?: (line: string) => void },
  ): Promise<ImageTemplateInfo>;
  /** Builds (first use) or finds the template; progress lines go to onProgress. */
  ensure(name: string, onProgress?: (line: string) => void): Promise<TemplateInfo>;
  get(name: string): Promise<TemplateInfo | undefined>;
  list(): Promise<TemplateInfo[]>;
  delete(name: string): Promise<void>;
  /** Names every template can be built from without being present (minimal, base). */
  builtIns(): string[];
  /** Keeps template `name` from the image cache's garbage collection until the returned function is called. */
  hold?(name: string): () => void;
  /** Removes image templates and cached layers nothing uses (oci/image-gc.ts). */
  pruneImages?(opts: PruneOptions): Promise<PruneReport>;
  /** Starts the periodic prune (its interval from the host's settings); `inUse`: the capsules' templates. */
  startImageGc?(inUse: () => Iterable<string>, log: (msg: string, data: Record<string, unknown>) => void): void;
  stopImageGc?(): void;
}

export type TimeoutAction = 'destroy' | 'pause' | 'hibernate';

/** Everything the agent keeps about one capsule; persisted as JSON under <dataDir>/capsules/. */
export interface CapsuleRecord {
  id: string;
  template: string;
  runtime: RuntimeName;
  state: CapsuleState;
  vcpus: number;
  memoryMb: number;
  createdAt: number;
  /** 0 = never expires. */
  expiresAt: number;
  timeoutSec: number;
  timeoutAction: TimeoutAction;
  metadata: Record<string, string>;
  envs: Record<string, string>;
  internet: boolean;
  /** Absent: no egress policy (only the internet switch). */
  networkPolicy?: CapsuleNetworkPolicy;
  envdAccessToken: string;
  /** envd's default user and working directory, sent with every /init (absent: user, /home/user). */
  defaultUser?: string;
  defaultWorkdir?: string;
  address: string;
  /** Id of the capsule's runtime and network resources; differs from `id` when it came from the warm pool. */
  runtimeId?: string;
  handle?: RuntimeHandle;
  network?: CapsuleNetworkInfo;
  pauseKeeps?: string;
  error?: string;
  /** Volumes of this host mounted into the capsule. */
  volumes?: CapsuleVolumeMount[];
  /** It was a warm-pool capsule, claimed at create. */
  fromWarmPool?: boolean;
}

/** A volume (VolumeStore id) and where the capsule sees it. */
export interface CapsuleVolumeMount {
  volumeId: string;
  path: string;
}

export interface ManagerDeps {
  dataDir: string;
  runtimes: Map<RuntimeName, CapsuleRuntime>;
  defaultRuntime: RuntimeName;
  network: NetworkProvider;
  templates: TemplateProvider;
  /** Ready capsules kept per template, e.g. { minimal: 2 } (default none). */
  warmPool?: Record<string, number>;
  /** What this host can hold (default: WRENN_MAX_CAPSULES / WRENN_MEMORY_RESERVE_MB, no table sizes). */
  capacity?: { config: CapacityConfig; spareNetworks?: () => number };
  log?: (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
}
