// The metrics E2B's GET /sandboxes/{id}/metrics answers for a time range: every 5 s the agent takes
// a sample of each running capsule (memory, disk, processes, and CPU use since the last sample) and
// keeps the last two hours of them in memory, per capsule, until the capsule is destroyed. One
// capsule is sampled at a time and the next round starts 5 s after the last ended.
// At 1,000 idle capsules a full sample of each (several cgroup files and a statfs, or a walk of the
// writable layer where a capsule has no disk of its own) every 5 s was the agent's largest idle cost
// (issue 15). An idle capsule cannot change its memory, processes or disk without using CPU, so when
// the source offers a cheap CPU counter and it has not moved, the round repeats the last sample
// (CPU 0) for the price of one file read; once a minute its memory is read as well (page cache
// reclaim lowers memory without the capsule running), the one figure that can move without CPU.
// When the source also offers the counters of all capsules together (the cgroup parent's CPU and
// memory): if the CPU total has not moved since the previous round, no capsule sampled then used
// CPU, and each one's last sample is repeated without a read per capsule; if the memory total has
// not moved either, nothing a sample holds can have changed (reclaim included), so not even the
// once-a-minute full sample is due: a host of idle capsules costs two file reads per round.
// Repeated samples are kept as runs (a sample and the times it repeated, one number each), so an
// idle capsule adds no object per round and two hours of them weigh ~11 KB, not ~130 KB.
import type { CapsuleStats } from '../runtimes/runtime.js';

export const METRICS_SAMPLE_INTERVAL_MS = 5_000;
/** Samples kept per capsule: two hours at one every 5 s. */
export const METRICS_SAMPLES_KEPT = 1_440;
/** However idle a capsule, a full sample at least this often while the host's memory moves (page cache reclaim). */
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

/** The counters of all capsules together. */
export interface AllUsage {
  cpuNs: bigint;
  memoryBytes: bigint;
}

export interface MetricsSource {
  /** Capsules to sample now (running ones) with their vCPU count. */
  running(): { id: string; vcpus: number }[];
  stats(id: string): Promise<CapsuleStats>;
  /** The cumulative CPU counter alone, when the runtime can read it for next to nothing. */
  cpuUsageNs?(id: string): bigint | undefined;
  /** The memory use alone, when the runtime can read it cheaply (one file). */
  memoryBytes?(id: string): number | undefined;
  /** CPU and memory counters of all capsules together, when the runtimes can read them for next to nothing. */
  allUsage?(): AllUsage | undefined;
}

/** A sample and the later samples that repeated it with CPU 0 (their times only). */
interface Run {
  first: MetricsSample;
  repeats: number[];
}

interface Series {
  runs: Run[];
  /** Samples held in runs, the dropped ones (`skip`) not counted. */
  count: number;
  /** Samples of runs[0] dropped already (1: its first; 1 + k: its first and k repeats). */
  skip: number;
  lastCpuNs?: bigint;
  lastAtMs?: number;
  /** When its memory was last read: a full sample, or a memory refresh of an idle capsule. */
  lastFullAtMs?: number;
  /** The round that last sampled it (full or repeated). */
  round?: number;
}

/** Dropped samples of the oldest run are cut out of its array once this many pile up. */
const COMPACT_AFTER = 256;

export class MetricsHistory {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private round = 0;
  private lastAll: AllUsage | undefined;
  /** Samples repeated thanks to the all-capsules counters, without a read per capsule (tests, logs). */
  repeatedWithoutRead = 0;
  /** Rounds where neither all-capsules counter moved: no file read beyond those two (tests, logs). */
  stillRounds = 0;
  /** Idle capsules whose due full sample was a read of their memory alone (tests, logs). */
  memoryRefreshes = 0;

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
    const s = this.series.get(id);
    if (!s) return [];
    const out: MetricsSample[] = [];
    s.runs.forEach((run, i) => {
      const skip = i === 0 ? s.skip : 0;
      const t = run.first.timestampMs;
      if (skip === 0 && t >= startMs && t <= endMs) out.push(run.first);
      for (let k = Math.max(0, skip - 1); k < run.repeats.length; k++) {
        const at = run.repeats[k]!;
        if (at >= startMs && at <= endMs) out.push({ ...run.first, timestampMs: at, cpuUsedPct: 0 });
      }
    });
    return out;
  }

  /** The newest sample's CPU use (0 before the second sample). */
  lastCpuPct(id: string): number {
    const run = this.series.get(id)?.runs.at(-1);
    return !run || run.repeats.length > 0 ? 0 : run.first.cpuUsedPct;
  }

  /** One round over the running capsules (also called by tests instead of waiting for the timer). */
  async sampleAll(): Promise<void> {
    // Read before any capsule of this round: a capsule's counter read later in the round includes
    // everything up to then, so an equal total next round means none of them moved since.
    let all: AllUsage | undefined;
    try {
      all = this.source.allUsage?.();
    } catch {
      all = undefined;
    }
    const prev = this.lastAll;
    const cpuStill = all !== undefined && prev !== undefined && all.cpuNs === prev.cpuNs;
    const allStill = cpuStill && all?.memoryBytes === prev?.memoryBytes;
    if (allStill) this.stillRounds++;
    this.lastAll = all;
    const previous = this.round++;
    const roundAt = Date.now();
    for (const { id, vcpus } of this.source.running()) {
      if (cpuStill && this.repeatWithoutRead(id, vcpus, allStill ? undefined : Date.now(), roundAt, previous)) continue;
      const now = Date.now();
      if (this.repeatIfIdle(id, vcpus, now)) continue;
      const stats = await this.source.stats(id).catch(() => undefined);
      if (stats) this.record(id, vcpus, stats, Date.now());
    }
  }

  /**
   * Repeats the last sample with CPU 0 for a capsule sampled in the previous round, no read. With
   * `now` (only the CPU total stood still) not when its full sample is due; without, whenever.
   */
  private repeatWithoutRead(
    id: string,
    vcpus: number,
    now: number | undefined,
    roundAt: number,
    previous: number,
  ): boolean {
    const s = this.series.get(id);
    const last = s?.runs.at(-1);
    if (!s || !last || s.round !== previous || s.lastFullAtMs === undefined || last.first.cpuCount !== vcpus)
      return false;
    if (now !== undefined && now - s.lastFullAtMs >= this.fullSampleMs) return this.refreshMemory(s, id, now);
    const at = now ?? roundAt;
    s.lastAtMs = at;
    s.round = this.round;
    this.repeat(s, at);
    this.repeatedWithoutRead++;
    return true;
  }

  /** Repeats the last sample with CPU 0 when the capsule's CPU counter has not moved. */
  private repeatIfIdle(id: string, vcpus: number, now: number): boolean {
    const s = this.series.get(id);
    const last = s?.runs.at(-1);
    if (!s || !last || !this.source.cpuUsageNs || s.lastFullAtMs === undefined) return false;
    const due = now - s.lastFullAtMs >= this.fullSampleMs;
    if ((due && !this.source.memoryBytes) || last.first.cpuCount !== vcpus) return false;
    let cpu: bigint | undefined;
    try {
      cpu = this.source.cpuUsageNs(id);
    } catch {
      return false; // let the full sample decide whether the capsule is still there
    }
    if (cpu === undefined || cpu !== s.lastCpuNs) return false;
    if (due) return this.refreshMemory(s, id, now);
    s.lastAtMs = now;
    s.round = this.round;
    this.repeat(s, now);
    return true;
  }

  /**
   * The once-a-minute sample of a capsule whose CPU did not move: only its memory can have changed
   * (page cache reclaim; processes, disk and limits cannot change without it running), so only
   * memory is read: one file instead of four and a statfs. On a host whose kernel reclaims all the
   * time (DAMON here) the capsules' memory total moves in most rounds and this is the common case.
   */
  private refreshMemory(s: Series, id: string, at: number): boolean {
    const last = s.runs.at(-1)?.first;
    if (!last || !this.source.memoryBytes) return false;
    let mem: number | undefined;
    try {
      mem = this.source.memoryBytes(id);
    } catch {
      mem = undefined;
    }
    if (mem === undefined) return false; // the full sample says whether the capsule is still there
    s.lastAtMs = at;
    s.lastFullAtMs = at;
    s.round = this.round;
    if (mem === last.memUsedBytes) this.repeat(s, at);
    else {
      s.runs.push({ first: { ...last, timestampMs: at, cpuUsedPct: 0, memUsedBytes: mem }, repeats: [] });
      this.added(s);
    }
    this.memoryRefreshes++;
    return true;
  }

  private record(id: string, vcpus: number, st: CapsuleStats, now: number): void {
    let s = this.series.get(id);
    if (!s) {
      s = { runs: [], count: 0, skip: 0 };
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
    s.runs.push({
      first: {
        timestampMs: now,
        cpuUsedPct: Math.round(cpu * 100) / 100,
        cpuCount: vcpus,
        memUsedBytes: st.memoryBytes,
        memTotalBytes: st.memoryLimitBytes,
        diskUsedBytes: st.diskUsedBytes,
        pids: st.pids,
      },
      repeats: [],
    });
    this.added(s);
  }

  /** One more sample equal to the newest but at `at` with CPU 0. */
  private repeat(s: Series, at: number): void {
    s.runs.at(-1)?.repeats.push(at);
    this.added(s);
  }

  /** Drops the oldest samples past `kept`. */
  private added(s: Series): void {
    s.count++;
    while (s.count > this.kept) {
      const oldest = s.runs[0];
      if (!oldest) break;
      const left = 1 + oldest.repeats.length - s.skip;
      const over = s.count - this.kept;
      if (left <= over) {
        s.runs.shift();
        s.count -= left;
        s.skip = 0;
        continue;
      }
      s.skip += over;
      s.count -= over;
      if (s.skip >= COMPACT_AFTER) {
        // The oldest kept sample becomes the run's first (it is a repeat: CPU 0).
        const at = oldest.repeats[s.skip - 1]!;
        s.runs[0] = {
          first: { ...oldest.first, timestampMs: at, cpuUsedPct: 0 },
          repeats: oldest.repeats.slice(s.skip),
        };
        s.skip = 0;
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sampleAll().finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }
}
