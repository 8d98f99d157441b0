#!/usr/bin/env node
// bench/envd-early-ready.mjs through the e2b SDK against `wrenn up` (prints JSON): each round one
// cold Sandbox.create + commands.run('true') each way, in turns (the order alternating): `early` as
// capsules start by default, `after_load` with WRENN_ENVD_EARLY_READY=0 in the capsule's environment
// (envd says ready only after it loaded). Per way: the create call and create to the first run's end.
// Run as root after `npm run build`; BENCH_N rounds (default 12); runs in node-lines' trees
// (`--benches envd-early-ready-e2b`).
import { Sandbox } from 'e2b';
import { startBenchStack } from './lib/bench-stack.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 12);
if (!Number.isInteger(N) || N < 1 || N > 500) throw new Error('BENCH_N must be a whole number 1..500');
const WAYS = { early: {}, after_load: { WRENN_ENVD_EARLY_READY: '0' } };
const rows = Object.fromEntries(Object.keys(WAYS).map((w) => [w, { create_ms: [], create_to_first_run_ms: [] }]));
const stack = await startBenchStack('early-e2b', { pool: '10.218.12.0/24', prefix: 'ee', metadataPort: 31277 });
try {
  for (let round = 0; round <= N; round++) {
    const ways = Object.keys(WAYS);
    for (const way of round % 2 ? ways.reverse() : ways) {
      const t0 = performance.now();
      const sbx = await Sandbox.create('minimal', { ...stack.e2bOptions, envs: WAYS[way] });
      const t1 = performance.now();
      const r = await sbx.commands.run('true');
      const t2 = performance.now();
      await sbx.kill();
      if (r.exitCode !== 0) throw new Error(`commands.run failed (${way})`);
      if (round === 0) continue; // warms the stack and the page cache
      rows[way].create_ms.push(t1 - t0);
      rows[way].create_to_first_run_ms.push(t2 - t0);
    }
  }
} finally {
  await stack.stop();
}
const result = { bench: 'envd-early-ready-e2b', node: process.version, rounds: N };
for (const [way, r] of Object.entries(rows))
  result[way] = Object.fromEntries(Object.entries(r).map(([k, xs]) => [k, latencyStats(xs, { percentiles: [50] })]));
console.log(JSON.stringify(result, null, 2));
