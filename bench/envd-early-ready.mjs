#!/usr/bin/env node
// What envd saying "ready" once its port listens (before node's modules and its bundle load, see
// packages/envd/bundle/start.cjs) does to a cold create, on the node running this (prints JSON): the
// host agent on the namespace runtime, no warm pool; each round creates one capsule each way, in
// turns (the order alternating): `early` as capsules start by default, `after_load` with
// WRENN_ENVD_EARLY_READY=0 in the capsule's environment (envd says ready after listening, as
// before). Per way: the create call, create to the first `true` exec, and the init's
// init-to-ready step. Run as root after `npm run build`; BENCH_N rounds (default 15). Runs in
// bench/node-lines.mjs's trees too (`--benches envd-early-ready`): the capsules' envd then runs on
// that line's node.
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../packages/host-agent/dist/src/agent.js';
import { createAgentClient } from '../packages/host-agent/dist/src/auth/client.js';
import { createLocalLayers } from '../packages/host-agent/dist/src/local-providers.js';
import { agentNetWarmPool } from '../packages/host-agent/dist/src/network/index.js';
import { latencyStats } from './lib/latency-stats.mjs';
import { stopLocalAgent } from './lib/stop-local-agent.mjs';

const N = Number(process.env.BENCH_N ?? 15);
if (!Number.isInteger(N) || N < 1 || N > 500) throw new Error('BENCH_N must be a whole number 1..500');
const WAYS = { early: {}, after_load: { WRENN_ENVD_EARLY_READY: '0' } };
const CGROUP_PARENT = 'wrenn-bench-early-ready';

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-early-ready-'));
const network = {
  pool: '10.215.32.0/22',
  names: { netnsPrefix: 'wrer-', ifPrefix: 'wer', chainPrefix: 'WRER' },
  metadataPort: 31261,
  warmPool: agentNetWarmPool(),
};
const layers = await createLocalLayers(dataDir, { network, cgroupParent: CGROUP_PARENT });
const agent = await startAgent({ ...layers, dataDir, listen: { host: '127.0.0.1', port: 0 } });
const c = createAgentClient(agent.url, agent.secret);
const ns = layers.runtimes.get('namespace');
const rows = Object.fromEntries(
  Object.keys(WAYS).map((w) => [w, { create_ms: [], create_to_first_exec_ms: [], init_to_ready_ms: [] }]),
);
const load = [loadavg()[0]];
try {
  for (let round = 0; round <= N; round++) {
    const ways = Object.keys(WAYS);
    for (const way of round % 2 ? ways.reverse() : ways) {
      const t0 = performance.now();
      const { capsule } = await c.createCapsule({ template: 'minimal', timeoutSec: 600, envs: WAYS[way] });
      const t1 = performance.now();
      const initToReady = ns.lastCreateTimings?.initToReady ?? Number.NaN;
      const r = await c.exec({ capsuleId: capsule.id, cmd: 'true' });
      const t2 = performance.now();
      await c.destroyCapsule({ id: capsule.id });
      if (r.exitCode !== 0) throw new Error(`exec failed (${way}): ${r.error}`);
      if (round === 0) continue; // builds the template, warms the page cache
      rows[way].create_ms.push(t1 - t0);
      rows[way].create_to_first_exec_ms.push(t2 - t0);
      rows[way].init_to_ready_ms.push(initToReady);
    }
  }
  load.push(loadavg()[0]);
  const result = { bench: 'envd-early-ready', node: process.version, rounds: N, load_average: load };
  for (const [way, r] of Object.entries(rows))
    result[way] = Object.fromEntries(Object.entries(r).map(([k, xs]) => [k, latencyStats(xs, { percentiles: [50] })]));
  console.log(JSON.stringify(result, null, 2));
} finally {
  await stopLocalAgent({ agent, layers, dataDir, cgroupParent: CGROUP_PARENT });
}
