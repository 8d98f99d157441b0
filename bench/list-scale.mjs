#!/usr/bin/env node
// How the control plane's list endpoints and per-round queries scale with the capsules in its
// database (prints JSON): a control plane alone on SQLite (no agent, no capsules run: rows are
// inserted as one host's running capsules, plus stopped history), then at each step the median
// time and CPU of GET /v1/capsules (default page and limit=1000), E2B GET /sandboxes (v1: all
// running) and /v2/sandboxes, the scheduler's host loads, and the reconciler's capsule query.
// BENCH_STEPS=100,1000,5000 (running rows), BENCH_HISTORY=2 (stopped rows per running row).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureAdmin } from '../packages/control-plane/dist/src/auth/index.js';
import { createCapsule, setCapsuleState } from '../packages/control-plane/dist/src/db/repositories/capsules.js';
import { createHost, listHostLoads } from '../packages/control-plane/dist/src/db/repositories/hosts.js';
import { startControlPlane } from '../packages/control-plane/dist/src/server.js';

const STEPS = (process.env.BENCH_STEPS ?? '100,1000,5000').split(',').map(Number);
const HISTORY = Number(process.env.BENCH_HISTORY ?? 2);
const round = (x) => Math.round(x * 100) / 100;
async function median(fn, n = 7) {
  const runs = [];
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    const c = process.cpuUsage(c0);
    runs.push({ cpu_ms: (c.user + c.system) / 1000, wall_ms: performance.now() - t0 });
  }
  const by = (k) => round(runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(n / 2)]);
  return { cpu_ms: by('cpu_ms'), wall_ms: by('wall_ms') };
}

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-list-'));
const cp = await startControlPlane({
  listen: { host: '127.0.0.1', port: 0 },
  dataDir,
  domain: 'localhost',
  publicUrl: 'http://127.0.0.1',
  stateLoops: false,
  logLevel: 'silent',
});
const result = { bench: 'list-scale', db: 'sqlite', stopped_rows_per_running: HISTORY, steps: [] };
try {
  const db = cp.ctx.database.db;
  const admin = await ensureAdmin({ db, dataDir });
  const headers = { authorization: `Bearer ${admin.apiKey}` };
  const get = (path) =>
    fetch(`${cp.url}${path}`, { headers }).then(async (r) => {
      if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      return r.text();
    });
  const host = await createHost(db, {
    address: 'http://127.0.0.1:1',
    runtimes: ['namespace'],
    cpuCount: 2,
    memoryMb: 24000,
  });
  let running = 0;
  const row = (state) =>
    createCapsule(db, {
      teamId: admin.team.id,
      hostId: host.id,
      template: 'minimal',
      runtime: 'namespace',
      vcpus: 1,
      memoryMb: 512,
      timeoutSec: 3600,
      metadata: { owner: 'bench', n: String(running) },
      envs: { A: 'x'.repeat(64) },
      state,
    });
  for (const n of STEPS) {
    while (running < n) {
      await row('running');
      for (let h = 0; h < HISTORY; h++) {
        const c = await row('running');
        await setCapsuleState(db, c.id, 'stopped');
      }
      running++;
    }
    const step = {
      running_rows: running,
      stopped_rows: running * HISTORY,
      get_v1_capsules_default_page: await median(() => get('/v1/capsules')),
      get_v1_capsules_limit_1000: await median(() => get('/v1/capsules?limit=1000')),
      e2b_get_sandboxes_v1_all: await median(() => get('/sandboxes')),
      e2b_get_v2_sandboxes_page: await median(() => get('/v2/sandboxes')),
      scheduler_host_loads: await median(() => listHostLoads(db, { status: 'online' })),
    };
    result.steps.push(step);
    process.stderr.write(`${JSON.stringify(step)}\n`);
  }
} catch (err) {
  result.error = String(err?.stack ?? err);
} finally {
  await cp.close();
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
