// MetricsHistory without capsules: CPU use from the cumulative counter between samples, the range
// query, the bound on samples kept, forgetting a capsule, a capsule whose stats fail, and the reads a
// round makes (counted, not timed) with idle capsules and with a busy one beside them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetricsHistory } from '../src/manager/metrics-history.js';
import type { CapsuleStats } from '../src/runtimes/runtime.js';

function source(vcpus = 2) {
  const cpu = new Map<string, bigint>([
    ['a', 0n],
    ['b', 0n],
  ]);
  let failB = false;
  return {
    cpu,
    failB: () => {
      failB = true;
    },
    src: {
      running: () => [...cpu.keys()].map((id) => ({ id, vcpus })),
      stats: async (id: string): Promise<CapsuleStats> => {
        if (id === 'b' && failB) throw new Error('gone');
        return { cpuUsageNs: cpu.get(id) ?? 0n, memoryBytes: 10, memoryLimitBytes: 100, pids: 3, diskUsedBytes: 7 };
      },
    },
  };
}

test('CPU use is the share of the vCPUs used between two samples; ranges, bounds and forget work', async () => {
  const s = source(2);
  const h = new MetricsHistory(s.src, 60_000, 3);
  await h.sampleAll();
  assert.equal(h.lastCpuPct('a'), 0, 'no CPU figure before a second sample');
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 200));
  const elapsed = Date.now() - t0;
  // One vCPU busy the whole time of two: 50 %.
  s.cpu.set('a', BigInt(elapsed) * 1_000_000n);
  await h.sampleAll();
  const pct = h.lastCpuPct('a');
  assert.ok(pct > 35 && pct <= 50, `cpu ${pct}`);
  assert.equal(h.lastCpuPct('b'), 0);
  const all = h.range('a', 0, Date.now());
  assert.equal(all.length, 2);
  assert.deepEqual(
    { ...all[1], timestampMs: 0, cpuUsedPct: 0 },
    { timestampMs: 0, cpuUsedPct: 0, cpuCount: 2, memUsedBytes: 10, memTotalBytes: 100, diskUsedBytes: 7, pids: 3 },
  );
  assert.deepEqual(h.range('a', 0, (all[0]?.timestampMs ?? 0) - 1), []);
  // At most 3 kept: the oldest go first.
  await h.sampleAll();
  await h.sampleAll();
  const kept = h.range('a', 0, Date.now());
  assert.equal(kept.length, 3);
  assert.ok((kept[0]?.timestampMs ?? 0) >= (all[1]?.timestampMs ?? Infinity));
  // A capsule whose stats fail is skipped; the others are still sampled.
  s.failB();
  const before = h.range('b', 0, Date.now()).length;
  await h.sampleAll();
  assert.equal(h.range('b', 0, Date.now()).length, before);
  h.forget('a');
  assert.deepEqual(h.range('a', 0, Date.now()), []);
});

test('the timer samples by itself and stops', async () => {
  const s = source(1);
  const h = new MetricsHistory(s.src, 20, 100);
  h.start();
  await new Promise((r) => setTimeout(r, 150));
  h.stop();
  const n = h.range('a', 0, Date.now()).length;
  assert.ok(n >= 2, `${n} samples`);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(h.range('a', 0, Date.now()).length, n, 'sampled after stop');
});

test('an idle capsule (CPU counter unmoved) repeats its last sample without a full read; a busy one is read', async () => {
  let cpu = 5_000_000n;
  let fullReads = 0;
  let disk = 7;
  const src = {
    running: () => [{ id: 'a', vcpus: 1 }],
    stats: async (): Promise<CapsuleStats> => {
      fullReads++;
      return { cpuUsageNs: cpu, memoryBytes: 10, memoryLimitBytes: 100, pids: 3, diskUsedBytes: disk };
    },
    cpuUsageNs: () => cpu,
  };
  const h = new MetricsHistory(src, 60_000, 100, 60_000);
  await h.sampleAll();
  await h.sampleAll();
  await h.sampleAll();
  assert.equal(fullReads, 1, 'idle rounds must not take full samples');
  const s = h.range('a', 0, Date.now());
  assert.equal(s.length, 3, 'an idle round still records a sample');
  assert.deepEqual(
    s.map((x) => [x.cpuUsedPct, x.diskUsedBytes]),
    [
      [0, 7],
      [0, 7],
      [0, 7],
    ],
  );
  // The capsule works: the counter moves, so the next round reads everything again.
  cpu += 1_000_000n;
  disk = 9;
  await h.sampleAll();
  assert.equal(fullReads, 2);
  assert.equal(h.range('a', 0, Date.now()).at(-1)?.diskUsedBytes, 9);
  // With a full-sample period of 0 every round is full, idle or not.
  const always = new MetricsHistory(src, 60_000, 100, 0);
  await always.sampleAll();
  await always.sampleAll();
  assert.equal(fullReads, 4);
  // A counter that cannot be read falls back to the full sample.
  const broken = new MetricsHistory({ ...src, cpuUsageNs: () => undefined }, 60_000, 100, 60_000);
  await broken.sampleAll();
  await broken.sampleAll();
  assert.equal(fullReads, 6);
});

test('an unchanged all-capsules counter repeats every sample without a read per capsule; any move reads them', async () => {
  const s = source(1);
  let total = 0n;
  let memTick = 0;
  let reads = 0;
  let fulls = 0;
  const src = {
    ...s.src,
    stats: async (id: string) => {
      fulls++;
      return s.src.stats(id);
    },
    cpuUsageNs: (id: string) => {
      reads++;
      return s.cpu.get(id);
    },
    // Memory moves every round here: only the CPU total decides (the once-a-minute full sample stays due).
    allUsage: () => (total === undefined ? undefined : { cpuNs: total, memoryBytes: BigInt(++memTick) }),
  };
  const h = new MetricsHistory(src, 60_000, 100, 60_000);
  await h.sampleAll(); // first round: full samples
  assert.equal(fulls, 2);
  await h.sampleAll(); // total unchanged: repeated, no per-capsule read
  await h.sampleAll();
  assert.equal(reads, 0);
  assert.equal(fulls, 2);
  assert.equal(h.repeatedWithoutRead, 4);
  assert.equal(h.range('a', 0, Date.now()).length, 3);
  // 'a' used CPU: the total moved, so each capsule's own counter is read; 'a' gets a full sample.
  s.cpu.set('a', 5_000_000n);
  total = 5_000_000n;
  await new Promise((r) => setTimeout(r, 10)); // a share needs some elapsed time
  await h.sampleAll();
  assert.equal(reads, 2);
  assert.equal(fulls, 3);
  assert.ok(h.lastCpuPct('a') > 0, 'the CPU use shows');
  // A capsule that was not in the previous round (new, or running again) is never repeated blind.
  s.cpu.set('c', 0n);
  await h.sampleAll();
  assert.equal(fulls, 4, "'c' had a full sample though the total did not move");
  assert.equal(h.range('c', 0, Date.now()).length, 1);
  // A source that cannot tell the total: the per-capsule reads decide, as before.
  total = undefined as unknown as bigint;
  const before = reads;
  await h.sampleAll();
  assert.equal(reads - before, 3);
});

/** 50 idle capsules and one busy one, with the runtime's counters: every read of each kind counted. */
function host(n: number) {
  const cpu = new Map<string, bigint>();
  const mem = new Map<string, bigint>();
  for (let i = 0; i < n; i++) {
    cpu.set(`c${i}`, 1_000_000n);
    mem.set(`c${i}`, 8_000_000n);
  }
  // A busy capsule uses half a vCPU from the time it is marked: its counter is read off the clock,
  // so its share is ~50 % however long the rounds (and any stall between them) take.
  const busySince = new Map<string, number>();
  const counter = (id: string) => {
    const since = busySince.get(id);
    const base = cpu.get(id);
    return base === undefined || since === undefined ? base : base + BigInt((Date.now() - since) * 500_000);
  };
  const reads = { all: 0, cpu: new Map<string, number>(), full: new Map<string, number>() };
  const bump = (m: Map<string, number>, id: string) => m.set(id, (m.get(id) ?? 0) + 1);
  const sum = (m: Map<string, bigint>) => [...m.values()].reduce((a, b) => a + b, 0n);
  const cpuSum = () => [...cpu.keys()].reduce((a, id) => a + (counter(id) ?? 0n), 0n);
  const src = {
    running: () => [...cpu.keys()].map((id) => ({ id, vcpus: 1 })),
    stats: async (id: string): Promise<CapsuleStats> => {
      bump(reads.full, id);
      return {
        cpuUsageNs: counter(id) ?? 0n,
        memoryBytes: Number(mem.get(id) ?? 0n),
        memoryLimitBytes: 512 << 20,
        pids: 2,
        diskUsedBytes: 4096,
      };
    },
    cpuUsageNs: (id: string) => {
      bump(reads.cpu, id);
      return counter(id);
    },
    allUsage: () => {
      reads.all++;
      return { cpuNs: cpuSum(), memoryBytes: sum(mem) };
    },
  };
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  /** Marks a capsule busy from now, or stops it (its counter stays where it got to). */
  const busy = (id: string, on: boolean) => {
    if (on) busySince.set(id, Date.now());
    else {
      cpu.set(id, counter(id) ?? 0n);
      busySince.delete(id);
    }
  };
  return { cpu, mem, reads, src, total, busy };
}

test('idle capsules on a still host: no read per capsule, not even the once-a-minute full sample', async () => {
  const h0 = host(50);
  // Full samples due every round (period 0) unless the host's counters stand still.
  const h = new MetricsHistory(h0.src, 60_000, 100, 0);
  await h.sampleAll();
  assert.equal(h0.total(h0.reads.full), 50, 'the first round samples each capsule in full');
  for (let i = 0; i < 5; i++) await h.sampleAll();
  assert.equal(h0.total(h0.reads.full), 50, 'no full sample while nothing moved');
  assert.equal(h0.total(h0.reads.cpu), 0, 'no per-capsule counter read while nothing moved');
  assert.equal(h0.reads.all, 6, 'one read of the totals per round');
  assert.equal(h.stillRounds, 5);
  const s = h.range('c7', 0, Date.now());
  assert.equal(s.length, 6, 'each round still records a sample');
  assert.ok(s.every((x) => x.cpuUsedPct === 0 && x.memUsedBytes === 8_000_000 && x.pids === 2));
  assert.ok(s.every((x, i) => i === 0 || x.timestampMs >= (s[i - 1]?.timestampMs ?? 0)));
  // Memory moved somewhere (page cache reclaim: no CPU): the due full samples are taken again.
  h0.mem.set('c3', 7_000_000n);
  await h.sampleAll();
  assert.equal(h0.total(h0.reads.full), 100);
  assert.equal(h.range('c3', 0, Date.now()).at(-1)?.memUsedBytes, 7_000_000);
});

test('memory moved but no CPU (reclaim): an idle capsule due a full sample has its memory read alone', async () => {
  const h0 = host(50);
  const memReads = new Map<string, number>();
  const src = {
    ...h0.src,
    memoryBytes: (id: string) => {
      memReads.set(id, (memReads.get(id) ?? 0) + 1);
      return Number(h0.mem.get(id));
    },
  };
  // Every round due (period 0): the host's memory moves each round, its CPU never.
  const h = new MetricsHistory(src, 60_000, 100, 0);
  await h.sampleAll();
  assert.equal(h0.total(h0.reads.full), 50);
  for (let r = 0; r < 3; r++) {
    h0.mem.set('c3', 7_000_000n - BigInt(r));
    await h.sampleAll();
  }
  assert.equal(h0.total(h0.reads.full), 50, 'no full sample: CPU never moved');
  assert.equal(h0.total(h0.reads.cpu), 0, 'the CPU total stood still: no per-capsule CPU read');
  assert.equal(h0.total(memReads), 150, 'one memory read per capsule per due round');
  assert.equal(h.memoryRefreshes, 150);
  const c3 = h.range('c3', 0, Date.now());
  assert.deepEqual(
    c3.map((x) => x.memUsedBytes),
    [8_000_000, 7_000_000, 6_999_999, 6_999_998],
  );
  assert.ok(c3.every((x) => x.cpuUsedPct === 0 && x.pids === 2 && x.diskUsedBytes === 4096));
  assert.equal(h.range('c4', 0, Date.now()).length, 4);
  // A capsule that used CPU still gets its full sample.
  h0.busy('c9', true);
  await new Promise((res) => setTimeout(res, 5));
  await h.sampleAll();
  assert.equal(h0.reads.full.get('c9'), 2);
  assert.equal(h0.total(h0.reads.full), 51);
});

test('one busy capsule beside 50 idle ones: its CPU is right and it alone gets full samples', async () => {
  const h0 = host(51);
  const h = new MetricsHistory(h0.src, 60_000, 100, 60_000);
  await h.sampleAll();
  await h.sampleAll();
  h0.reads.cpu.clear();
  h0.reads.full.clear();
  const rounds = 4;
  h0.busy('c50', true);
  const pcts: number[] = [];
  for (let r = 0; r < rounds; r++) {
    await new Promise((res) => setTimeout(res, 40));
    await h.sampleAll();
    pcts.push(h.lastCpuPct('c50'));
  }
  // Half a vCPU; the first round's interval began before the capsule got busy, hence the low bound.
  assert.ok(
    pcts.slice(1).every((p) => p > 40 && p <= 55) && (pcts[0] ?? 0) > 0,
    `the busy capsule's CPU share each round: ${pcts.join(', ')} (about 50)`,
  );
  assert.equal(h0.reads.full.get('c50'), rounds, 'the busy capsule has a full sample each round');
  assert.equal(h0.total(h0.reads.full), rounds, 'no idle capsule has a full sample');
  // Each idle capsule costs one counter read per round (a kept-open file in the namespace runtime).
  assert.equal(h0.reads.cpu.get('c0'), rounds);
  for (let i = 0; i < 50; i++) {
    const s = h.range(`c${i}`, 0, Date.now());
    assert.equal(s.length, 2 + rounds);
    assert.ok(
      s.every((x) => x.cpuUsedPct === 0),
      `c${i} shows no CPU`,
    );
  }
  // The busy one stops: the next round (its counter moved since the last) reads all once more,
  // then the host stands still and reads nothing per capsule.
  h0.busy('c50', false);
  await h.sampleAll();
  const before = h0.total(h0.reads.cpu);
  await h.sampleAll();
  await h.sampleAll();
  assert.equal(h0.total(h0.reads.cpu), before);
  assert.equal(h.lastCpuPct('c50'), 0);
});

test('repeated samples are kept as runs: the bound and the range still count every sample', async () => {
  const h0 = host(1);
  const h = new MetricsHistory(h0.src, 60_000, 300, 60_000);
  for (let i = 0; i < 400; i++) await h.sampleAll();
  const s = h.range('c0', 0, Date.now());
  assert.equal(s.length, 300, 'at most 300 kept');
  // The oldest kept is the 101st taken: a repeat (CPU 0) standing in for the dropped full sample.
  assert.ok(s.every((x) => x.cpuUsedPct === 0 && x.memUsedBytes === 8_000_000));
  // A busy round starts a new run; the one before keeps its repeats.
  h0.cpu.set('c0', 9_000_000_000n);
  await new Promise((res) => setTimeout(res, 5));
  await h.sampleAll();
  const after = h.range('c0', 0, Date.now());
  assert.equal(after.length, 300);
  assert.ok((after.at(-1)?.cpuUsedPct ?? 0) > 0, 'the busy sample is the newest');
  assert.deepEqual(
    after.slice(0, -1).map((x) => x.cpuUsedPct),
    Array(299).fill(0),
  );
  const t = after.map((x) => x.timestampMs);
  assert.deepEqual(h.range('c0', t[10] ?? 0, t[20] ?? 0).length >= 11, true);
});
