#!/usr/bin/env node
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TemplateStore } from '../packages/host-agent/dist/src/rootfs/index.js';
import { NamespaceRuntime } from '../packages/host-agent/dist/src/runtimes/namespace/index.js';
import { removeCgroupParent } from './lib/cgroup-parent.mjs';
import { benchNodeLines, bundleWith, startEnvdOnHost, stopEnvd } from './lib/envd-host-start.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 15);
const IMAGES = process.env.BENCH_IMAGES ?? '/var/cache/wrenn-test-images';
const CGROUP_PARENT = 'wrenn-bench-envd-lines';
const lines = benchNodeLines(process.argv.slice(2));
const stats = (xs) => latencyStats(xs, { percentiles: [50], max: true });

const work = mkdtempSync(join(tmpdir(), 'wrenn-bench-envd-lines-'));
const dataDir = work;
const runtimes = [];
try {
  // One app dir a line holding the bundle that node made (its code cache is only good for it).
  for (const line of lines) {
    line.appDir = join(work, `app-${line.version}`);
    bundleWith(line.node, join(line.appDir, 'packages/envd/dist/bundle'));
    line.runtime = new NamespaceRuntime({
      dataDir,
      templates: new TemplateStore({ imagesDir: IMAGES }),
      cgroupParent: CGROUP_PARENT,
      nodePath: line.node,
      appDir: line.appDir,
    });
    runtimes.push(line.runtime);
    line.rows = { capsule_init_to_ready_ms: [], capsule_cpu_ms: [], host_ready_ms: [], host_cpu_ms: [] };
  }
  for (let round = 0; round <= N; round++) {
    for (const line of lines) {
      const inCapsule = await capsuleStart(line);
      const onHost = await hostStart(line);
      if (round === 0) continue; // warms the page cache and the template
      line.rows.capsule_init_to_ready_ms.push(inCapsule.readyMs);
      line.rows.capsule_cpu_ms.push(inCapsule.cpuMs);
      line.rows.host_ready_ms.push(onHost.readyMs);
      line.rows.host_cpu_ms.push(onHost.cpuMs);
    }
  }
  const result = { bench: 'capsule-envd-lines', rounds: N, lines: {} };
  for (const line of lines)
    result.lines[line.version] = Object.fromEntries(Object.entries(line.rows).map(([k, v]) => [k, stats(v)]));
  console.log(JSON.stringify(result, null, 2));
} finally {
  for (const rt of runtimes) await rt.cleanupStale(new Set()).catch(() => undefined);
  for (const rt of runtimes) await rt.close().catch(() => undefined);
  removeCgroupParent(CGROUP_PARENT);
  rmSync(work, { recursive: true, force: true });
}

/** One capsule: init to envd ready (the runtime's own timing) and its cgroup's CPU until then. */
async function capsuleStart(line) {
  const id = `cl-lines${Math.random().toString(36).slice(2, 10)}`;
  const handle = await line.runtime.create({
    id,
    template: 'minimal',
    vcpus: 1,
    memoryMb: 256,
    envs: {},
    internet: false,
    metadata: {},
  });
  try {
    const cpuDir = handle.state.cgroupDirs.find((d) => existsSync(join(d, 'cpuacct.usage')));
    if (!cpuDir) throw new Error(`no cpuacct.usage in ${handle.state.cgroupDirs.join(' ')}`);
    const cpuMs = Number(readFileSync(join(cpuDir, 'cpuacct.usage'), 'utf8')) / 1e6;
    return { readyMs: line.runtime.lastCreateTimings.initToReady, cpuMs };
  } finally {
    await line.runtime.destroy(handle);
  }
}

/** envd on the host as a capsule starts it: wall until ready, CPU of all its threads. */
async function hostStart(line) {
  const e = await startEnvdOnHost(line.node, [join(line.appDir, 'packages/envd/dist/bundle/start.cjs')], line.version);
  await stopEnvd(e.child);
  return { readyMs: e.readyMs, cpuMs: e.cpuMs };
}
