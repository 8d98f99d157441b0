// The interface every capsule runtime implements: namespace (this host's kernel),
// qemu and firecracker (VMs). The sandbox manager only talks to this.

import type { RuntimeName } from '@wrenn/protocol';

/** Every runtime Wrenn has (a host offers some of them): the capsule contract's list. */
export { RUNTIME_NAMES, type RuntimeName } from '@wrenn/protocol';

/** What a runtime needs to start one capsule. */
export interface CapsuleSpec {
  id: string; // cl-xxxx
  template: string; // template name (its rootfs layers are resolved by the rootfs store)
  vcpus: number;
  memoryMb: number;
  /** Extra environment for envd and every process it starts. */
  envs: Record<string, string>;
  /** Outbound internet (NAT) allowed. */
  internet: boolean;
  /** Values served by the metadata endpoint and exported into the environment. */
  metadata: { WRENN_SANDBOX_ID: string; WRENN_TEMPLATE_ID: string } & Record<string, string>;
  /** The capsule's network, made by the network layer before the runtime starts it. */
  network?: CapsuleNetworkRef;
  /**
   * What envd's POST /init would set. A runtime that can hand it to envd at start does so and says
   * `envdInitialized` in the handle: the manager then skips the /init round trip.
   */
  envdInit?: EnvdInit;
  /**
   * Volumes mounted read-write at `path`: `source` is a host directory (already mounted on the
   * host) for a runtime that binds, the directory its 9p server exports for one with volumeMounts
   * '9p', the volume's ext4 image for one with volumeMounts 'block'.
   */
  volumes?: { source: string; path: string }[];
}

/** The body of envd's POST /init that the host agent sends to every new capsule. */
export interface EnvdInit {
  envVars: Record<string, string>;
  accessToken: string;
  defaultUser: string;
  defaultWorkdir: string;
}

/** The part of the capsule's network a runtime needs: where to join it and the capsule's address. */
export interface CapsuleNetworkRef {
  capsuleIp: string;
  /** Network namespace to join (/run/netns/wrenn-<id>). */
  netnsPath?: string;
  [key: string]: unknown;
}

/** Everything needed to find a running capsule again after an agent restart; JSON-serialisable. */
export interface RuntimeHandle {
  runtime: RuntimeName;
  id: string;
  /** Address on this host where envd listens (port 49983) and capsule ports are reached. */
  address: string;
  /** Runtime-specific state (pids, paths, network slot...). */
  state: Record<string, unknown>;
  /** envd answered and already runs with spec.envdInit (no /init needed after create). */
  envdInitialized?: boolean;
}

export interface CapsuleStats {
  cpuUsageNs: bigint; // cumulative
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
  diskUsedBytes: number;
}

export interface PauseResult {
  /** What the pause kept, in words the API can show ("memory and processes", "disk only"). */
  keeps: string;
  /** true when running processes survive resume. */
  processesKept: boolean;
  /** The memory snapshot written, for VM runtimes: full memory or only the pages dirtied since the last one. */
  snapshot?: { kind: 'full' | 'diff'; bytes: number };
}

export interface CapsuleRuntime {
  readonly name: RuntimeName;
  /** Pause modes this runtime supports, best first. */
  readonly pauseModes: readonly ('freeze' | 'hibernate' | 'memory-snapshot')[];
  /**
   * How create honours spec.volumes: true, binding host directories (shared between capsules);
   * '9p', exporting each volume's host directory to a VM (shared like a bind);
   * 'block', opening each volume's image as a disk of its own (the capsule holds it alone).
   */
  readonly volumeMounts?: boolean | '9p' | 'block';
  /** Boots the capsule until envd answers /health; throws (and cleans up) on failure. */
  create(spec: CapsuleSpec): Promise<RuntimeHandle>;
  /** Stops the runtime's background work (pools); capsules keep running. */
  close?(): Promise<void>;
  destroy(handle: RuntimeHandle): Promise<void>;
  pause(handle: RuntimeHandle, mode: 'freeze' | 'hibernate' | 'memory-snapshot'): Promise<PauseResult>;
  resume(handle: RuntimeHandle): Promise<RuntimeHandle>;
  /** Writes a template named `name` from the capsule's current disk (and memory where the runtime can). */
  snapshot(handle: RuntimeHandle, name: string): Promise<void>;
  /** true when the capsule's processes still exist (used to re-adopt after an agent restart). */
  isAlive(handle: RuntimeHandle): Promise<boolean>;
  /**
   * Calls onExit(reason) once when the capsule's main process tree ends by itself (envd or the
   * init exited), without polling; returns the function that stops watching (call it before
   * destroying or hibernating). Optional: a runtime without it is only checked at re-adoption.
   */
  watchExit?(handle: RuntimeHandle, onExit: (reason: string) => void): () => void;
  stats(handle: RuntimeHandle): Promise<CapsuleStats>;
  /**
   * The capsule's cumulative CPU counter alone, read synchronously in microseconds (the metrics
   * history skips an idle capsule's full sample with it). Optional; undefined = not known.
   */
  cpuUsageNs?(handle: RuntimeHandle): bigint | undefined;
  /** The capsule's memory use alone, one cheap read (an idle capsule's periodic sample). Optional. */
  memoryBytes?(handle: RuntimeHandle): number | undefined;
  /**
   * The cumulative CPU counter and the memory use of all this runtime's capsules together, a cheap
   * read each (the metrics history skips a round's per-capsule reads while they stand still). Optional.
   */
  allUsage?(): { cpuNs: bigint; memoryBytes: bigint } | undefined;
  /** Removes leftovers of capsules this agent no longer knows (namespaces, mounts, cgroups, rules). */
  cleanupStale(knownIds: ReadonlySet<string>): Promise<void>;
  /**
   * Renames the capsule's host name (a pooled capsule handed to its user). Optional: where the
   * capsule's own root may set it (a VM), the manager can do it through envd instead.
   */
  setHostname?(handle: RuntimeHandle, hostname: string): Promise<void>;
}
