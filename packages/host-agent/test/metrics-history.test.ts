// MetricsHistory without capsules: CPU use from the cumulative counter between samples, the range
// query, the bound on samples kept, forgetting a capsule, and a capsule whose stats fail.
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
    allCpuUsageNs: () => total,
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
