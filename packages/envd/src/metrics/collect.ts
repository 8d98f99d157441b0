// Collects the capsule's CPU, memory and disk usage in the shape E2B's envd serves on GET /metrics.
// "The capsule" is its cgroup when one with a memory limit is visible (namespace capsules), else
// the whole machine (VM capsules). CPU percent is measured between two samples; the last sample is
// kept so a caller polling every few seconds gets the average since its previous call.
import { statfs } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CgroupReader, openCgroupReader } from './cgroup.js';
import { readCpuTimes, readMemInfo } from './proc.js';

export interface Metrics {
  /** Unix time in seconds. */
  ts: number;
  cpu_count: number;
  /** 0..100 over all the capsule's cores, two decimals. */
  cpu_used_pct: number;
  mem_total: number;
  mem_used: number;
  mem_cache: number;
  mem_total_mib: number;
  mem_used_mib: number;
  disk_used: number;
  disk_total: number;
}

interface CpuSample {
  atNs: bigint;
  /** cgroup CPU time in ns, or busy/total ticks from /proc/stat. */
  used: number;
  total: number;
}

const FIRST_SAMPLE_MS = 100;
// Two calls closer than this reuse the last percentage instead of measuring noise.
const MIN_INTERVAL_NS = 50_000_000n;
const MIB = 1024 * 1024;

export class MetricsCollector {
  private readonly cgroup: CgroupReader;
  private last: CpuSample | undefined;
  private lastPct = 0;
  private pending: Promise<number> | undefined;

  constructor(
    private readonly diskPath = '/',
    cgroup?: CgroupReader,
  ) {
    this.cgroup = cgroup ?? openCgroupReader();
  }

  async collect(): Promise<Metrics> {
    const cores = this.cores();
    const [cpuPct, disk] = await Promise.all([this.cpuPercent(cores), statfs(this.diskPath)]);
    const mem = this.memory();
    const diskTotal = disk.blocks * disk.bsize;
    return {
      ts: Math.floor(Date.now() / 1000),
      cpu_count: Math.max(1, Math.ceil(cores)),
      cpu_used_pct: cpuPct,
      mem_total: mem.total,
      mem_used: mem.used,
      mem_cache: mem.cache,
      mem_total_mib: Math.floor(mem.total / MIB),
      mem_used_mib: Math.floor(mem.used / MIB),
      disk_used: diskTotal - disk.bavail * disk.bsize,
      disk_total: diskTotal,
    };
  }

  /** Cores the capsule may use: its CPU quota when it has one, else the CPUs it may run on. */
  private cores(): number {
    const online = availableParallelism();
    const quota = this.cgroup.cpu()?.quotaCores;
    return quota !== undefined ? Math.min(quota, online) : online;
  }

  private memory(): { total: number; used: number; cache: number } {
    const host = readMemInfo();
    const cg = this.cgroup.memory();
    if (cg?.limit !== undefined && cg.limit < host.total) {
      const used = Math.max(0, cg.usage - cg.cache);
      return { total: cg.limit, used: Math.min(used, cg.limit), cache: cg.cache };
    }
    return {
      total: host.total,
      used: Math.max(0, host.total - host.free - host.buffers - host.cached),
      cache: host.cached,
    };
  }

  private sample(): CpuSample {
    const atNs = process.hrtime.bigint();
    const cg = this.cgroup.cpu();
    if (cg) return { atNs, used: cg.usageNs, total: 0 };
    const t = readCpuTimes();
    return { atNs, used: t.busy, total: t.total };
  }

  private async cpuPercent(cores: number): Promise<number> {
    if (this.pending) return this.pending;
    this.pending = this.measure(cores).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async measure(cores: number): Promise<number> {
    let prev = this.last;
    if (!prev) {
      prev = this.sample();
      await sleep(FIRST_SAMPLE_MS);
    } else if (process.hrtime.bigint() - prev.atNs < MIN_INTERVAL_NS) {
      return this.lastPct;
    }
    const now = this.sample();
    this.last = now;
    let ratio: number;
    if (now.total === 0 && prev.total === 0) {
      // cgroup: CPU nanoseconds over wall nanoseconds times the cores it may use.
      const wallNs = Number(now.atNs - prev.atNs);
      ratio = wallNs > 0 ? (now.used - prev.used) / (wallNs * cores) : 0;
    } else {
      const dt = now.total - prev.total;
      ratio = dt > 0 ? (now.used - prev.used) / dt : 0;
    }
    this.lastPct = Math.round(Math.min(1, Math.max(0, ratio)) * 10_000) / 100;
    return this.lastPct;
  }
}
