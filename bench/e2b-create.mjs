#!/usr/bin/env node
// Create to first exec through the official e2b SDK against `wrenn up` (prints JSON), `minimal`
// template: cold (no warm pool) and from the warm pool, p50 over several runs each.
// Run as root after `npm run build`.
import { Sandbox } from 'e2b';
import { startBenchStack } from './lib/bench-stack.mjs';

const N = Number(process.env.BENCH_N ?? 15);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const round = (x) => Math.round(x * 100) / 100;

async function measure(warm) {
  const stack = await startBenchStack(
    'e2b',
    { pool: '10.218.0.0/24', prefix: 'e', metadataPort: 31253 },
    warm ? { warmPool: { minimal: 2 } } : {},
  );
  const { up, e2bOptions: opts } = stack;
  const times = [];
  try {
    for (let i = 0; i < N; i++) {
      if (warm) {
        // Measure claims from a full pool: wait for the refill behind the previous claim.
        for (let k = 0; k < 200 && up.agent.manager.warmPoolReady('minimal') < 2; k++)
          await new Promise((r) => setTimeout(r, 50));
      }
      const t0 = performance.now();
      const sbx = await Sandbox.create('minimal', opts);
      const r = await sbx.commands.run('true');
      times.push(performance.now() - t0);
      if (r.exitCode !== 0) throw new Error('exec failed');
      await sbx.kill();
    }
  } finally {
    await stack.stop();
  }
  return {
    p50_ms: round(pct(times, 50)),
    p90_ms: round(pct(times, 90)),
    min_ms: round(Math.min(...times)),
    n: times.length,
  };
}

const cold = await measure(false);
const warm = await measure(true);
console.log(
  JSON.stringify(
    {
      bench: 'e2b-create',
      template: 'minimal',
      cold: { ...cold, target_p50_ms: 200 },
      warm_pool: { ...warm, target_p50_ms: 50 },
    },
    null,
    2,
  ),
);
