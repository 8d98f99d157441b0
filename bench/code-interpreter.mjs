#!/usr/bin/env node
// @e2b/code-interpreter against `wrenn up` (prints JSON): Sandbox.create() + the first
// runCode('1+1') (create to the first executed Python statement), cold and from the warm pool
// (`code-interpreter-v1=2`), p50 over several runs each; and the round trip of a trivial runCode
// in a running sandbox. The template comes from WRENN_BENCH_IMAGES (default: the test cache,
// /var/cache/wrenn-test-images), built there on first use. Run as root after `npm run build`.
import { Sandbox } from '@e2b/code-interpreter';
import { withBenchStack } from './lib/bench-stack.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 10);
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 50);
const TEMPLATE = 'code-interpreter-v1';
const IMAGES = process.env.WRENN_BENCH_IMAGES ?? process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images';
const stats = (xs) => latencyStats(xs, { percentiles: [50, 90], digits: 2 });

function withUp(warm, fn) {
  const net = { pool: '10.219.0.0/24', prefix: 'ci', metadataPort: 31254 };
  const options = { imagesDir: IMAGES, warmPool: warm ? { [TEMPLATE]: 2 } : {} };
  return withBenchStack('ci', net, options, (stack) => fn(stack.up, stack.e2bOptions));
}

async function createToFirstStatement(warm) {
  return withUp(warm, async (up, opts) => {
    // The first create builds the template if the cache lacks it: not measured.
    await (await Sandbox.create(opts)).kill();
    const times = [];
    for (let i = 0; i < N; i++) {
      if (warm) {
        for (let k = 0; k < 1200 && up.agent.manager.warmPoolReady(TEMPLATE) < 2; k++)
          await new Promise((r) => setTimeout(r, 50));
      }
      const t0 = performance.now();
      const sbx = await Sandbox.create(opts);
      const r = await sbx.runCode('1+1');
      times.push(performance.now() - t0);
      if (r.text !== '2') throw new Error(`runCode('1+1') gave ${JSON.stringify(r.text)}`);
      await sbx.kill();
    }
    return stats(times);
  });
}

async function roundTrip() {
  return withUp(false, async (_up, opts) => {
    const sbx = await Sandbox.create(opts);
    try {
      for (let i = 0; i < 5; i++) await sbx.runCode('1+1');
      const times = [];
      for (let i = 0; i < ROUND_TRIPS; i++) {
        const t0 = performance.now();
        await sbx.runCode('1+1');
        times.push(performance.now() - t0);
      }
      return stats(times);
    } finally {
      await sbx.kill();
    }
  });
}

const cold = await createToFirstStatement(false);
const warm = await createToFirstStatement(true);
const trip = await roundTrip();
console.log(
  JSON.stringify(
    {
      bench: 'code-interpreter',
      template: TEMPLATE,
      create_to_first_statement_cold: { ...cold, target_p50_ms: 1500 },
      create_to_first_statement_warm_pool: { ...warm, target_p50_ms: 60 },
      run_code_round_trip: { ...trip, target_p50_ms: 10 },
    },
    null,
    2,
  ),
);
