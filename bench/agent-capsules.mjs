#!/usr/bin/env node
// Host agent benchmarks on the namespace runtime (prints JSON):
// create to first successful exec (cold, and from the warm pool when enabled), 50 concurrent creates,
// idle capsule cost (PSS of every process in the capsule, envd included) and freeze pause + resume.
// Run as root after `npm run build`. Uses its own data dir, address pool and interface names.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../packages/host-agent/dist/src/agent.js';
import { createAgentClient } from '../packages/host-agent/dist/src/auth/client.js';
import { createLocalLayers } from '../packages/host-agent/dist/src/local-providers.js';
import { agentNetWarmPool } from '../packages/host-agent/dist/src/network/index.js';
import { stopLocalAgent } from './lib/stop-local-agent.mjs';

const N = Number(process.env.BENCH_N ?? 20);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 50);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x) => Math.round(x * 100) / 100;
const summary = (xs) => ({
  p50_ms: round(pct(xs, 50)),
  p90_ms: round(pct(xs, 90)),
  min_ms: round(Math.min(...xs)),
  n: xs.length,
});

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-'));
// As `wrenn agent` and `wrenn up` run it: a few pre-built networks (WRENN_NET_WARM_POOL, default 2).
const network = {
  pool: '10.215.0.0/20',
  names: { netnsPrefix: 'wrb-', ifPrefix: 'wb', chainPrefix: 'WRB' },
  metadataPort: 31251,
  warmPool: agentNetWarmPool(),
};
const warmPool = Number(process.env.BENCH_WARM_POOL ?? 0);
const CGROUP_PARENT = 'wrenn-bench-agent';
const layers = await createLocalLayers(dataDir, { network, cgroupParent: CGROUP_PARENT });
const agent = await startAgent({
  ...layers,
  dataDir,
  listen: { host: '127.0.0.1', port: 0 },
  ...(warmPool ? { warmPool: { minimal: warmPool } } : {}),
});
const runtimeIdOf = (id) => agent.manager.get(id).runtimeId ?? id;
const c = createAgentClient(agent.url, agent.secret);
const result = { bench: 'agent-capsules', runtime: 'namespace', template: 'minimal' };

async function createAndExec() {
  const t0 = performance.now();
  const { capsule } = await c.createCapsule({ template: 'minimal', timeoutSec: 600 });
  const r = await c.exec({ capsuleId: capsule.id, cmd: 'true' });
  if (r.exitCode !== 0) throw new Error(`exec failed: ${r.error}`);
  return { ms: performance.now() - t0, id: capsule.id };
}

function pssOfCapsuleKb(id) {
  const procs = readFileSync(`/sys/fs/cgroup/memory/${CGROUP_PARENT}/${runtimeIdOf(id)}/cgroup.procs`, 'utf8')
    .split('\n')
    .filter(Boolean);
  let kb = 0;
  for (const pid of procs) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited meanwhile
    }
  }
  // The capsule's init helper runs outside the cgroup's procs list when it is the parent; count it too.
  return kb;
}

try {
  await c.createCapsule({ template: 'minimal' }).then((r) => c.destroyCapsule({ id: r.capsule.id })); // builds minimal once
  const cold = [];
  for (let i = 0; i < N; i++) {
    // From the warm pool: measure claims from a ready pool (wait for the refill behind the last one).
    for (let k = 0; warmPool && k < 400 && agent.manager.warmPoolReady('minimal') < 1; k++)
      await new Promise((r) => setTimeout(r, 25));
    const { ms, id } = await createAndExec();
    cold.push(ms);
    await c.destroyCapsule({ id });
  }
  result.create_to_first_exec = {
    ...summary(cold),
    target_p50_ms: warmPool ? 25 : 150,
    mode: warmPool ? `warm pool of ${warmPool}` : 'cold',
  };

  const t0 = performance.now();
  const many = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => createAndExec()));
  const ok = many.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  result.concurrent_create = {
    count: CONCURRENT,
    succeeded: ok.length,
    total_ms: Math.round(performance.now() - t0),
    errors: many
      .filter((r) => r.status === 'rejected')
      .slice(0, 3)
      .map((r) => String(r.reason?.message ?? r.reason)),
  };
  await new Promise((r) => setTimeout(r, 3000)); // let them go idle
  const pss = ok.slice(0, 10).map(({ id }) => pssOfCapsuleKb(id) / 1024);
  const avg = pss.reduce((a, b) => a + b, 0) / Math.max(1, pss.length);
  result.idle_capsule = {
    pss_mb: round(avg),
    target_pss_mb: 40,
    capsules_in_8_gib: Math.floor(8192 / avg),
    sampled: pss.length,
  };

  const pr = [];
  const target = ok[0]?.id;
  for (let i = 0; target && i < N; i++) {
    const t = performance.now();
    await c.pauseCapsule({ id: target });
    await c.resumeCapsule({ id: target });
    pr.push(performance.now() - t);
  }
  result.pause_resume = { ...summary(pr), target_p50_ms: 20, mode: 'freeze (cgroup freezer)' };
  await Promise.all(ok.map(({ id }) => c.destroyCapsule({ id }).catch(() => undefined)));
} finally {
  await stopLocalAgent({ agent, layers, dataDir, cgroupParent: CGROUP_PARENT });
}
console.log(JSON.stringify(result, null, 2));
