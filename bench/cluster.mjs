#!/usr/bin/env node
// Creates through a cluster on this machine (prints JSON): the cluster test's fixture
// (PostgreSQL, `wrenn server` replicas behind HAProxy, host agents each in a network namespace of
// its own) for each shape in BENCH_SHAPES (default "1x1,2x1,1x2,2x2,3x3": replicas x agents). BENCH_N
// `minimal` capsules are created through the balancer with the official e2b SDK, BENCH_C at a time
// (default 20 and 4); reported: creates per second over the run and create p50/p99. Then
// BENCH_EXECS commands (`true`, default 100) run one after another, round robin over those
// capsules, through the balancer's sandbox proxy (replica -> agent's /proxy hop -> envd): exec
// p50/p99. Each capsule is killed after the run. Also: how long a capsule change announced by one
// replica (LISTEN/NOTIFY) takes to reach another (p50/p99 over 200), the cross-replica cache
// invalidation. Agents serve TLS, as `wrenn agent` does by default; BENCH_AGENT_TLS=0 runs them
// plain (h2c), BENCH_AGENT_TLS=both runs every shape both ways, interleaved, BENCH_ROUNDS times
// (default 1; the order of the two alternates per round), so the two see the same machine.
// Run as root after `npm run build`.
import { Sandbox } from 'e2b';
import pino from 'pino';
import { e2bKeyOf } from '../packages/control-plane/dist/src/auth/api-keys.js';
import { CapsuleChanges } from '../packages/control-plane/dist/src/cluster/capsule-changes.js';
import { openDatabase } from '../packages/control-plane/dist/src/db/open.js';
import { startCluster } from '../packages/control-plane/dist/test/cluster/fixture.js';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 20);
const C = Number(process.env.BENCH_C ?? 4);
const EXECS = Number(process.env.BENCH_EXECS ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const tlsMode = process.env.BENCH_AGENT_TLS ?? '1';
if (!['0', '1', 'both'].includes(tlsMode)) throw new Error(`BENCH_AGENT_TLS must be 0, 1 or both, got "${tlsMode}"`);
const shapes = (process.env.BENCH_SHAPES ?? '1x1,2x1,1x2,2x2,3x3').split(',').map((s) => s.split('x').map(Number));

async function runShape(replicas, agents, agentTls, round) {
  const c = await startCluster({ replicas, agents, agentTls });
  try {
    const opts = { apiKey: e2bKeyOf(c.adminKey), apiUrl: c.balancerUrl, sandboxUrl: c.balancerUrl, timeoutMs: 600_000 };
    // One create first so templates and connections are warm.
    await (await Sandbox.create('minimal', opts)).kill();
    const times = [];
    const made = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < N) {
          next++;
          const s = performance.now();
          made.push(await Sandbox.create('minimal', opts));
          times.push(performance.now() - s);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const execs = [];
    for (let i = 0; i < EXECS && made.length > 0; i++) {
      const s = performance.now();
      await made[i % made.length].commands.run('true');
      execs.push(performance.now() - s);
    }
    for (const s of made) await s.kill().catch(() => {});
    return {
      replicas,
      agents,
      agentTls,
      round,
      concurrency: C,
      creates_per_s: Math.round((N / secs) * 100) / 100,
      create: latencyStats(times),
      ...(execs.length ? { exec_via_proxy: latencyStats(execs) } : {}),
    };
  } finally {
    await c.stop();
  }
}

const results = [];
for (let round = 1; round <= ROUNDS; round++) {
  for (const [replicas, agents] of shapes) {
    const order = tlsMode === 'both' ? (round % 2 === 1 ? [true, false] : [false, true]) : [tlsMode !== '0'];
    for (const agentTls of order) results.push(await runShape(replicas, agents, agentTls, round));
  }
}

// LISTEN/NOTIFY delivery between two replicas' connections.
const { startTestPostgres } = await import('../packages/control-plane/dist/test/pg.js');
const pg = await startTestPostgres();
let notify;
try {
  const url = await pg.createDatabase();
  const dbs = [await openDatabase({ databaseUrl: url }), await openDatabase({ databaseUrl: url })];
  const log = pino({ level: 'silent' });
  const waiting = new Map();
  const a = await new CapsuleChanges({ databaseUrl: url, db: dbs[0].db, log, onChange: () => {} }).start();
  const b = await new CapsuleChanges({
    databaseUrl: url,
    db: dbs[1].db,
    log,
    onChange: (id) => waiting.get(id)?.(),
  }).start();
  const lat = [];
  for (let i = 0; i < 200; i++) {
    const id = `c${i}`;
    const s = performance.now();
    await new Promise((resolve) => {
      waiting.set(id, resolve);
      a.publish(id);
    });
    lat.push(performance.now() - s);
  }
  notify = latencyStats(lat, { digits: 2 });
  await a.stop();
  await b.stop();
  for (const d of dbs) await d.close();
} finally {
  await pg.stop();
}

process.stdout.write(
  `${JSON.stringify({ bench: 'cluster', n: N, shapes: results, notify_to_other_replica: notify }, null, 2)}\n`,
);
