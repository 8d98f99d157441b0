#!/usr/bin/env node
// What the control plane and host agent spend per idle capsule (prints JSON): `wrenn up` in this
// process (control plane + agent, SQLite), N idle `minimal` capsules made through /v1/capsules,
// then at each step: this process's CPU over an idle window (process.cpuUsage, so other load on
// the machine does not count), the CPU of one round of each periodic task (host heartbeat,
// reconciler, metrics scrapes, the agent's ListCapsules), list endpoints, and the agent's open fds.
// BENCH_STEPS=0,100,200 (capsules at each step), BENCH_IDLE_S=10. Run as root after `npm run build`.
import { readdirSync } from 'node:fs';
import { HostMonitor } from '../packages/control-plane/dist/src/hosts/monitor.js';
import { Reconciler } from '../packages/control-plane/dist/src/reconciler/reconciler.js';
import { startBenchStack } from './lib/bench-stack.mjs';

const STEPS = (process.env.BENCH_STEPS ?? '0,100,200').split(',').map(Number);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 10);
const CGROUP_PARENT = 'wrenn-bench-periodic';
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const cpuMs = (fn) => async () => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { cpu_ms: round((c.user + c.system) / 1000), wall_ms: round(performance.now() - t0) };
};
/** Median over `n` runs of cpuMs(fn). */
async function median(fn, n = 5) {
  const runs = [];
  for (let i = 0; i < n; i++) runs.push(await cpuMs(fn)());
  const by = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(n / 2)];
  return { cpu_ms: by('cpu_ms'), wall_ms: by('wall_ms') };
}

const stack = await startBenchStack(
  'periodic',
  { pool: '10.216.0.0/21', prefix: 'p', metadataPort: 31252, rateMbit: 0 },
  { cgroupParent: CGROUP_PARENT, imagesDir: process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images' },
);
const { up, api } = stack;
const result = { bench: 'host-periodic', idle_window_s: IDLE_S, steps: [] };
const ids = [];
try {
  for (const n of STEPS) {
    while (ids.length < n) {
      const batch = Math.min(10, n - ids.length);
      const made = await Promise.all(
        Array.from({ length: batch }, () => api('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 3600 })),
      );
      ids.push(...made.map((c) => c.id));
    }
    await new Promise((r) => setTimeout(r, 3000)); // creates settle
    const c0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const idle = process.cpuUsage(c0);
    const ctx = up.cp.ctx;
    const step = {
      capsules: ids.length,
      idle_cpu_pct_of_core: round(((idle.user + idle.system) / 1000 / (IDLE_S * 1000)) * 100, 3),
      agent_fds: readdirSync('/proc/self/fd').length,
      heartbeat_round: await median(() => new HostMonitor(ctx).checkOnce()),
      // A fresh reconciler compares every capsule; a running one skips a host that did not change.
      reconcile_round_full: await median(() => new Reconciler(ctx).reconcileOnce()),
      reconcile_round_idle: await (async () => {
        const rec = new Reconciler(ctx);
        await rec.reconcileOnce();
        await rec.reconcileOnce();
        return median(() => rec.reconcileOnce());
      })(),
      agent_list_capsules: await median(() =>
        ctx.agents
          .client({ id: up.agent.hostId, address: up.agent.url, agentSecret: up.agent.secret })
          .listCapsules({}),
      ),
      get_v1_capsules_limit_1000: await median(() => api('GET', '/v1/capsules?limit=1000')),
      get_v1_capsules_default_page: await median(() => api('GET', '/v1/capsules')),
      e2b_get_sandboxes: await median(() => api('GET', '/sandboxes')),
      agent_metrics_scrape: await median(() =>
        fetch(`${up.agent.url}/metrics`, { headers: { authorization: `Bearer ${up.agent.secret}` } }).then((r) =>
          r.text(),
        ),
      ),
      cp_metrics_scrape: await median(() => fetch(`${up.url}/metrics`).then((r) => r.text())),
    };
    result.steps.push(step);
    process.stderr.write(`${JSON.stringify(step)}\n`);
  }
} catch (err) {
  result.error = String(err?.stack ?? err);
} finally {
  await stack.stop();
}
console.log(JSON.stringify(result, null, 2));
