// Firecracker's HTTP API over its unix socket, without an SDK: one method per call Wrenn makes.
// Errors carry Firecracker's fault_message. (Firecracker itself needs KVM.)
import http from 'node:http';

export class FirecrackerApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly faultMessage: string,
  ) {
    super(`Firecracker ${method} ${path} failed (${status}): ${faultMessage}`);
  }
}

/** A token bucket: `size` units refilled every `refillTimeMs`, plus a one-time burst. */
export interface TokenBucket {
  size: number;
  refill_time: number;
  one_time_burst?: number;
}

export interface RateLimiter {
  bandwidth?: TokenBucket;
  ops?: TokenBucket;
}

const MB = 1_000_000;

/** The capsule NIC's tx limit: 200 MB/s sustained with a one-time 100 MB burst. */
export const DEFAULT_TX_RATE_LIMITER: RateLimiter = {
  bandwidth: { size: 200 * MB, refill_time: 1000, one_time_burst: 100 * MB },
};

export interface BootSource {
  kernel_image_path: string;
  initrd_path?: string;
  boot_args?: string;
}

export interface Drive {
  drive_id: string;
  path_on_host: string;
  is_root_device: boolean;
  is_read_only: boolean;
  cache_type?: 'Unsafe' | 'Writeback';
  io_engine?: 'Sync' | 'Async';
}

export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  tx_rate_limiter?: RateLimiter;
  rx_rate_limiter?: RateLimiter;
}

export interface MachineConfig {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
}

export class FirecrackerClient {
  constructor(readonly socketPath: string) {
    if (!socketPath) throw new Error('the Firecracker API socket path is required');
  }

  request<T = unknown>(method: 'GET' | 'PUT' | 'PATCH', path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          agent: false,
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            const status = res.statusCode ?? 0;
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300) resolve(json as T);
            else {
              const fault = (json as { fault_message?: string } | undefined)?.fault_message ?? (text || 'no message');
              reject(new FirecrackerApiError(method, path, status, fault));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Firecracker ${method} ${path}: no answer in 30 s`)));
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
            ? new Error(`no Firecracker API at ${this.socketPath} (${e.code}): is the VMM running?`)
            : e,
        ),
      );
      req.end(payload);
    });
  }

  /** The VMM's version, e.g. "1.10.1" (checked at start: the API differs between releases). */
  async version(): Promise<string> {
    return (await this.request<{ firecracker_version: string }>('GET', '/version')).firecracker_version;
  }

  describe(): Promise<{ id: string; state: string; vmm_version: string; app_name: string }> {
    return this.request('GET', '/');
  }

  putBootSource(b: BootSource): Promise<void> {
    return this.request('PUT', '/boot-source', b);
  }

  putDrive(d: Drive): Promise<void> {
    return this.request('PUT', `/drives/${encodeURIComponent(d.drive_id)}`, d);
  }

  putNetworkInterface(n: NetworkInterface): Promise<void> {
    return this.request('PUT', `/network-interfaces/${encodeURIComponent(n.iface_id)}`, n);
  }

  putMachineConfig(m: MachineConfig): Promise<void> {
    return this.request('PUT', '/machine-config', m);
  }

  /** MMDS V2 (session tokens) on the given interfaces. */
  putMmdsConfig(networkInterfaces: string[], ipv4Address = '169.254.169.254'): Promise<void> {
    return this.request('PUT', '/mmds/config', {
      version: 'V2',
      network_interfaces: networkInterfaces,
      ipv4_address: ipv4Address,
    });
  }

  putMmds(data: Record<string, unknown>): Promise<void> {
    return this.request('PUT', '/mmds', data);
  }

  start(): Promise<void> {
    return this.request('PUT', '/actions', { action_type: 'InstanceStart' });
  }

  pause(): Promise<void> {
    return this.request('PATCH', '/vm', { state: 'Paused' });
  }

  resume(): Promise<void> {
    return this.request('PATCH', '/vm', { state: 'Resumed' });
  }

  createSnapshot(opts: { snapshotPath: string; memFilePath: string; type: 'Full' | 'Diff' }): Promise<void> {
    return this.request('PUT', '/snapshot/create', {
      snapshot_type: opts.type,
      snapshot_path: opts.snapshotPath,
      mem_file_path: opts.memFilePath,
    });
  }

  /** Restores with guest memory served by a UFFD handler listening on `uffdSocket`. */
  loadSnapshotWithUffd(opts: {
    snapshotPath: string;
    uffdSocket: string;
    resume: boolean;
    trackDirtyPages: boolean;
  }): Promise<void> {
    return this.request('PUT', '/snapshot/load', {
      snapshot_path: opts.snapshotPath,
      mem_backend: { backend_type: 'Uffd', backend_path: opts.uffdSocket },
      track_dirty_pages: opts.trackDirtyPages,
      resume_vm: opts.resume,
    });
  }
}
