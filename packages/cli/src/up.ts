// `wrenn up`: the whole system on one machine — this machine's host agent (with its runtimes,
// network and templates) and a control plane that takes it as its first host, in one process with
// the embedded database, all under one data directory. This is where the two are put together:
// the host agent starts its half, the control plane adopts it.

import { type RunningUp, startWithLocalAgent, type WithLocalAgentOptions } from '@wrenn/control-plane';
import { type LocalAgentOptions, type NetworkOptions, startLocalAgent } from '@wrenn/host-agent';
import pino from 'pino';

export type { RunningUp };

/** The control plane's options (startWithLocalAgent's, less the agent it is given) and the local agent's. */
export interface UpOptions extends Omit<WithLocalAgentOptions, 'local'> {
  /** Network settings of the local agent (tests give each system its own pool). */
  network?: Partial<NetworkOptions>;
  /** Ready capsules kept per template (default none). */
  warmPool?: Record<string, number>;
  /** cgroup parent of the local agent's capsules (default "wrenn"; distinct per agent on one machine). */
  cgroupParent?: string;
  /** Template cache (default <dataDir>/images); tests share one so `base` is built once. */
  imagesDir?: string;
  /** Each namespace capsule's disk in MiB (default WRENN_CAPSULE_DISK_MB, else 10240). */
  capsuleDiskMb?: number;
  /** Capsules the host holds at most and memory it keeps free (default WRENN_MAX_CAPSULES, WRENN_MEMORY_RESERVE_MB). */
  capacity?: LocalAgentOptions['capacity'];
}

export async function startUp(o: UpOptions): Promise<RunningUp> {
  const local = await startLocalAgent({
    dataDir: o.dataDir,
    // Loopback only: other hosts never call this agent, the control plane's proxy hop may.
    listen: { host: '127.0.0.1', port: 0 },
    ...(o.network ? { network: o.network } : {}),
    ...(o.warmPool ? { warmPool: o.warmPool } : {}),
    ...(o.cgroupParent ? { cgroupParent: o.cgroupParent } : {}),
    ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}),
    ...(o.capsuleDiskMb !== undefined ? { diskMb: o.capsuleDiskMb } : {}),
    ...(o.capacity ? { capacity: o.capacity } : {}),
    log: pino({ level: o.logLevel ?? process.env.WRENN_LOG_LEVEL ?? 'info', base: { svc: 'host-agent' } }),
  });
  const { network: _n, warmPool: _w, cgroupParent: _c, imagesDir: _i, capsuleDiskMb: _d, capacity: _k, ...cp } = o;
  try {
    return await startWithLocalAgent({ local, ...cp });
  } catch (err) {
    await local.close().catch(() => undefined);
    throw err;
  }
}
