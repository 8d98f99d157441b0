// The metrics E2B's GET /sandboxes/{id}/metrics answers for a time range: every 5 s the agent takes
// a sample of each running capsule (memory, disk, processes, and CPU use since the last sample) and
// keeps the last two hours of them in memory, per capsule, until the capsule is destroyed. One
// capsule is sampled at a time and the next round starts 5 s after the last ended.
// At 1,000 idle capsules a full sample of each (several cgroup files and a statfs, or a walk of the
// writable layer where a capsule has no disk of its own) every 5 s was the agent's largest idle cost
// (issue 15). An idle capsule cannot change its memory, processes or disk without using CPU, so when
// the source offers a cheap CPU counter and it has not moved, the round repeats the last sample
// (CPU 0) for the price of one file read; a full sample is still taken once a minute. When the
// source also offers the CPU counter of all capsules together (the cgroup parent's) and that has
// not moved since the previous round, no capsule sampled then used any CPU: the round repeats each
// one's last sample without reading a file per capsule.
import type { CapsuleStats } from '../runtimes/runtime.js';

export const METRICS_SAMPLE_INTERVAL_MS = 5_000;
/** Samples kept per capsule: two hours at one every 5 s. */
export const METRICS_SAMPLES_KEPT = 1_440;
/** However idle a capsule, a full sample at least this often (page cache reclaim moves memory). */
export const METRICS_FULL_SAMPLE_MS = 60_000;

export interface MetricsSample {
  timestampMs: number;
  /** Share of the capsule's vCPUs used since the previous sample, 0-100. */
  cpuUsedPct: number;
  cpuCount: number;
  memUsedBytes: number;
  memTotalBytes: number;
  diskUsedBytes: number;
  pids: number;
}

export interface MetricsSource {
  /** Capsules to sample now (running ones) with their vCPU count. */
  running(): { id: string; vcpus: number }[];
  stats(id: string): Promise<CapsuleStats>;
  /** The cumulative CPU counter alone, when the runtime can read it for next to nothing. */
  cpuUsageNs?(id: string): bigint | undefined;
  /** The cumulative CPU counter of all capsules together, when the runtimes can read it for next to nothing. */
  allCpuUsageNs?(): bigint | undefined;
}

interface Series {
  samples: MetricsSample[];
  lastCpuNs?: bigint;
  lastAtMs?: number;
  lastFullAtMs?: number;
  /** The round that last sampled it (full or repeated). */
  round?: number;
}

export class MetricsHistory {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private round = 0;
  private lastAllCpuNs: bigint | undefined;
  /** Samples repeated thanks to the all-capsules counter, without a read per capsule (tests, logs). */
  repeatedWithoutRead = 0;

  constructor(
    private readonly source: MetricsSource,
    private readonly intervalMs = METRICS_SAMPLE_INTERVAL_MS,
    private readonly kept = METRICS_SAMPLES_KEPT,
    private readonly fullSampleMs = METRICS_FULL_SAMPLE_MS,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  forget(id: string): void {
    this.series.delete(id);
  }

  /** Samples taken from startMs to endMs, both included, oldest first. */
  range(id: string, startMs: number, endMs: number): MetricsSample[] {
    const s = this.series.get(id)?.samples ?? [];
    return s.filter((m) => m.timestampMs >= startMs && m.timestampMs <= endMs);
  }

  /** The newest sample's CPU use (0 before the second sample). */
  lastCpuPct(id: string): number {
    return this.series.get(id)?.samples.at(-1)?.cpuUsedPct ?? 0;
  }

  /** One round over the running capsules (also called by tests instead of waiting for the timer). */
  async sampleAll(): Promise<void> {
    // Read before any capsule of this round: a capsule's counter read later in the round includes
    // everything up to then, so an equal total next round means none of them moved since.
    let all: bigint | undefined;
    try {
      all = this.source.allCpuUsageNs?.();
    } catch {
      all = undefined;
    }
    const nobodyMoved = all !== undefined && this.lastAllCpuNs !== undefined && all === this.lastAllCpuNs;
    this.lastAllCpuNs = all;
    const previous = this.round++;
    for (const { id, vcpus } of this.source.running()) {
      const now = Date.now();
      if (nobodyMoved && this.repeatWithoutRead(id, vcpus, now, previous)) continue;
      if (this.repeatIfIdle(id, vcpus, now)) continue;
      const stats = await this.source.stats(id).catch(() => undefined);
      if (stats) this.record(id, vcpus, stats, Date.now());
    }
  }

  /** Repeats the last sample with CPU 0 for a capsule sampled in the previous round, no read. */
  private repeatWithoutRead(id: string, vcpus: number, now: number, previous: number): boolean {
    const s = this.series.get(id);
    const last = s?.samples.at(-1);
    if (!s || !last || s.round !== previous || s.lastFullAtMs === undefined) return false;
    if (now - s.lastFullAtMs >= this.fullSampleMs || last.cpuCount !== vcpus) return false;
    s.lastAtMs = now;
    s.round = this.round;
    this.push(s, { ...last, timestampMs: now, cpuUsedPct: 0 });
    this.repeatedWithoutRead++;
    return true;
  }

  /** Repeats the last sample with CPU 0 when the capsule's CPU counter has not moved. */
  private repeatIfIdle(id: string, vcpus: number, now: number): boolean {
    const s = this.series.get(id);
    const last = s?.samples.at(-1);
    if (!s || !last || !this.source.cpuUsageNs || s.lastFullAtMs === undefined) return false;
    if (now - s.lastFullAtMs >= this.fullSampleMs || last.cpuCount !== vcpus) return false;
    let cpu: bigint | undefined;
    try {
      cpu = this.source.cpuUsageNs(id);
    } catch {
      return false; // let the full sample decide whether the capsule is still there
    }
    if (cpu === undefined || cpu !== s.lastCpuNs) return false;
    s.lastAtMs = now;
    s.round = this.round;
    this.push(s, { ...last, timestampMs: now, cpuUsedPct: 0 });
    return true;
  }

  private record(id: string, vcpus: number, st: CapsuleStats, now: number): void {
    let s = this.series.get(id);
    if (!s) {
      s = { samples: [] };
      this.series.set(id, s);
    }
    let cpu = 0;
    if (s.lastCpuNs !== undefined && s.lastAtMs !== undefined && now > s.lastAtMs && st.cpuUsageNs >= s.lastCpuNs) {
      const usedNs = Number(st.cpuUsageNs - s.lastCpuNs);
      cpu = Math.min(100, (usedNs / ((now - s.lastAtMs) * 1e6 * Math.max(1, vcpus))) * 100);
    }
    s.lastCpuNs = st.cpuUsageNs;
    s.lastAtMs = now;
    s.lastFullAtMs = now;
    s.round = this.round;
    this.push(s, {
      timestampMs: now,
      cpuUsedPct: Math.round(cpu * 100) / 100,
      cpuCount: vcpus,
      memUsedBytes: st.memoryBytes,
      memTotalBytes: st.memoryLimitBytes,
      diskUsedBytes: st.diskUsedBytes,
      pids: st.pids,
    });
  }

  private push(s: Series, sample: MetricsSample): void {
    s.samples.push(sample);
    if (s.samples.length > this.kept) s.samples.splice(0, s.samples.length - this.kept);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sampleAll().finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }
}
