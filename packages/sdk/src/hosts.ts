// Hosts (the machines whose agents run capsules): listed with any key; drained and opened again
// with the admin key (`wrenn host drain`): a drained host takes no new capsules and keeps its own.
// Their warm pools (ready capsules kept per template) are listed too, and set with the admin key
// (`wrenn host warm-pool`).
import type { HostJson } from '@wrenn/protocol';
import type { ConnectionOptions } from './config.js';
import { ApiClient } from './http.js';

export interface HostInfo {
  id: string;
  /** online, unreachable, or draining (drained and answering). */
  status: string;
  draining: boolean;
  runtimes: string[];
  cpuCount: number;
  memoryMb: number;
  capsules: number;
  allocatedVcpus: number;
  allocatedMemoryMb: number;
  lastHeartbeatAt: Date | null;
  /** Capsules kept booted per template, as the host's agent last reported (ready now, kept). */
  warmPools: { template: string; ready: number; target: number }[];
  /** Sizes an admin set through the API (null: the agent's own --warm-pool). */
  warmPoolTarget: Record<string, number> | null;
}

const info = (j: HostJson): HostInfo => ({
  id: j.id,
  status: j.status,
  draining: j.draining,
  runtimes: j.runtimes,
  cpuCount: j.cpu_count,
  memoryMb: j.memory_mb,
  capsules: j.capsules,
  allocatedVcpus: j.allocated_vcpus,
  allocatedMemoryMb: j.allocated_memory_mb,
  lastHeartbeatAt: j.last_heartbeat_at ? new Date(j.last_heartbeat_at) : null,
  warmPools: j.warm_pools,
  warmPoolTarget: j.warm_pool_target,
});

const at = (id: string) => `/v1/hosts/${encodeURIComponent(id)}`;

// biome-ignore lint/complexity/noStaticOnlyClass: the same shape as Volume
export class Host {
  static async list(opts: ConnectionOptions = {}): Promise<HostInfo[]> {
    return (await new ApiClient(opts).json<{ hosts: HostJson[] }>('GET', '/v1/hosts')).hosts.map(info);
  }

  /** No new capsules go to the host; the ones it has stay (admin key). */
  static async drain(id: string, opts: ConnectionOptions = {}): Promise<HostInfo> {
    return info(await new ApiClient(opts).json<HostJson>('POST', `${at(id)}/drain`));
  }

  /**
   * How many ready capsules the host keeps per template (a built-in by name, any other by its
   * template id; left out: none), kept and sent to its agent again when it restarts (admin key).
   * `applied` is false when the host did not answer: the sizes go to it when it does.
   */
  static async setWarmPool(
    id: string,
    sizes: Record<string, number>,
    opts: ConnectionOptions = {},
  ): Promise<HostInfo & { applied: boolean }> {
    const res = await new ApiClient(opts).fetch('PUT', `${at(id)}/warm-pool`, { json: { sizes } });
    return { ...info((await res.json()) as HostJson), applied: res.status === 200 };
  }

  /** Forgets the sizes set with setWarmPool; the agent keeps its pools until it restarts with its own (admin key). */
  static async clearWarmPool(id: string, opts: ConnectionOptions = {}): Promise<HostInfo> {
    return info(await new ApiClient(opts).json<HostJson>('DELETE', `${at(id)}/warm-pool`));
  }

  /** The host takes new capsules again (admin key). */
  static async undrain(id: string, opts: ConnectionOptions = {}): Promise<HostInfo> {
    return info(await new ApiClient(opts).json<HostJson>('POST', `${at(id)}/undrain`));
  }

  /**
   * Removes, on every host, the image templates and cached image layers nothing uses, and the
   * stored file sets of finished template builds, unused for `olderThanSec` (default: the
   * configured keep times; 0: all that is unused). Admin key.
   */
  static async pruneImages(o: { olderThanSec?: number } & ConnectionOptions = {}): Promise<ImagePruneReport> {
    const { olderThanSec, ...conn } = o;
    const j = await new ApiClient(conn).json<ImagePruneJson>('POST', '/v1/images/prune', {
      json: olderThanSec === undefined ? {} : { older_than_sec: olderThanSec },
      timeoutMs: 0,
    });
    return {
      hosts: j.hosts.map((h) => ({
        hostId: h.host_id,
        removedTemplates: h.removed_templates,
        removedLayers: h.removed_layers,
        freedBytes: h.freed_bytes,
        keptLayers: h.kept_layers,
        cacheBytes: h.cache_bytes,
        ...(h.error ? { error: h.error } : {}),
      })),
      fileSets: { removed: j.file_sets.removed, freedBytes: j.file_sets.freed_bytes, kept: j.file_sets.kept },
    };
  }
}

export interface ImagePruneReport {
  hosts: {
    hostId: string;
    removedTemplates: string[];
    /** Layer digests. */
    removedLayers: string[];
    freedBytes: number;
    keptLayers: number;
    cacheBytes: number;
    /** The host could not be pruned (the others were). */
    error?: string;
  }[];
  fileSets: { removed: number; freedBytes: number; kept: number };
}

interface ImagePruneJson {
  hosts: {
    host_id: string;
    removed_templates: string[];
    removed_layers: string[];
    freed_bytes: number;
    kept_layers: number;
    cache_bytes: number;
    error?: string;
  }[];
  file_sets: { removed: number; freed_bytes: number; kept: number };
}
