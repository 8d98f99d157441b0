#!/usr/bin/env node
// Where a cold e2b create's time goes, on the node running this: each round times the SDK's
// Sandbox.create (and inside it the host agent's SandboxManager.create and the namespace
// runtime's own step timings: template, prepare, spawn to init, init to envd ready), the first
// commands.run('true') and a second one, plus this process's CPU for the round (SDK client,
// control plane and agent share it under `wrenn up`). Prints JSON with p50s.
// Usage (root, after `npm run build`): node bench/e2b-create-phases.mjs [--runs 10]
// BENCH_ENVS: a JSON object of environment variables every capsule gets (Sandbox.create's envs),
// e.g. '{"WRENN_ENVD_EARLY_READY":"0"}' for envd saying ready only after it loaded.
import { Sandbox } from 'e2b';
import { startBenchStack } from './lib/bench-stack.mjs';

const envs = JSON.parse(process.env.BENCH_ENVS ?? '{}');
if (!envs || typeof envs !== 'object' || Array.isArray(envs) || Object.values(envs).some((v) => typeof v !== 'string'))
  throw new Error('BENCH_ENVS must be a JSON object of strings');
const runs = process.argv.includes('--runs') ? Number(process.argv[process.argv.indexOf('--runs') + 1]) : 10;
const p50 = (xs) => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] * 10) / 10;
const stack = await startBenchStack('e2b-phases', { pool: '10.218.1.0/24', prefix: 'p', metadataPort: 31254 });
const { up } = stack;
const manager = up.agent.manager;
const agentCreate = manager.create.bind(manager);
let agentMs = 0;
manager.create = async (...args) => {
  const t = performance.now();
  try {
    return await agentCreate(...args);
  } finally {
    agentMs = performance.now() - t;
  }
};
const opts = stack.e2bOptions;
const ns = up.layers.runtimes.get('namespace');
const rows = {
  create_ms: [],
  agent_create_ms: [],
  ns_template_ms: [],
  ns_prepare_ms: [],
  ns_spawn_to_init_ms: [],
  ns_init_to_ready_ms: [],
  ns_host_health_ms: [],
  first_run_ms: [],
  second_run_ms: [],
  kill_ms: [],
  cpu_ms: [],
};
try {
  for (let i = 0; i < runs + 1; i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const sbx = await Sandbox.create('minimal', { ...opts, envs });
    const t1 = performance.now();
    if ((await sbx.commands.run('true')).exitCode !== 0) throw new Error('exec failed');
    const t2 = performance.now();
    await sbx.commands.run('true');
    const t3 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    await sbx.kill();
    const t4 = performance.now();
    if (i === 0) continue; // the first round warms the process up
    rows.create_ms.push(t1 - t0);
    rows.agent_create_ms.push(agentMs);
    const t = ns.lastCreateTimings;
    rows.ns_template_ms.push(t.template);
    rows.ns_prepare_ms.push(t.prepare);
    rows.ns_spawn_to_init_ms.push(t.spawnToInit);
    rows.ns_init_to_ready_ms.push(t.initToReady);
    rows.ns_host_health_ms.push(t.hostHealth);
    rows.first_run_ms.push(t2 - t1);
    rows.second_run_ms.push(t3 - t2);
    rows.kill_ms.push(t4 - t3);
    rows.cpu_ms.push((cpu.user + cpu.system) / 1000);
  }
} finally {
  await stack.stop();
}
console.log(
  JSON.stringify({
    bench: 'e2b-create-phases',
    node: process.version,
    envs,
    runs,
    p50: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, p50(v)])),
  }),
);
