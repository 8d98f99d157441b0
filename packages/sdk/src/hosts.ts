// Hosts (the machines whose agents run capsules): listed with any key; drained and opened again
// with the admin key (`wrenn host drain`): a drained host takes no new capsules and keeps its own.
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

  /** The host takes new capsules again (admin key). */
  static async undrain(id: string, opts: ConnectionOptions = {}): Promise<HostInfo> {
    return info(await new ApiClient(opts).json<HostJson>('POST', `${at(id)}/undrain`));
  }
}
