#!/usr/bin/env node
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchNodeLines, bundleWith, startEnvdOnHost, stopEnvd } from './lib/envd-host-start.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const rounds = opt('rounds', 20);
const afterMs = opt('after-ms', 400);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 200) throw new Error('--rounds must be 1..200');
if (!Number.isInteger(afterMs) || afterMs < 0 || afterMs > 10_000) throw new Error('--after-ms must be 0..10000');
const lines = benchNodeLines(argv.filter((a) => /^\d+\.\d+\.\d+$/.test(a)));
const WAYS = [
  { name: 'bound by the addon', env: { WRENN_BOUND_SOCKET: '1' } },
  { name: 'listen(port, host)', env: { WRENN_BOUND_SOCKET: '0' } },
];
const threadsCpuMs = (pid) =>
  readdirSync(`/proc/${pid}/task`).reduce(
    (sum, t) => sum + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6,
    0,
  );
const stats = (xs) => {
  const s = latencyStats(xs, { percentiles: [50] });
  return { p50: s.p50_ms, min: s.min_ms };
};

const work = mkdtempSync(join(tmpdir(), 'wrenn-bench-bound-socket-'));
try {
  for (const line of lines) {
    line.bundle = bundleWith(line.node, join(work, `bundle-${line.version}`));
    line.rows = Object.fromEntries(
      WAYS.map((w) => [w.name, { ready_ms: [], cpu_until_ready_ms: [], cpu_after_ms: [] }]),
    );
  }
  const load = [loadavg()[0]];
  for (let r = 0; r <= rounds; r++)
    for (const line of lines)
      for (const way of r % 2 ? [...WAYS].reverse() : WAYS) {
        const e = await startEnvdOnHost(line.node, [join(line.bundle, 'start.cjs')], line.version, way.env);
        try {
          await new Promise((ok) => setTimeout(ok, afterMs));
          const after = threadsCpuMs(e.child.pid);
          if (r === 0) continue; // warms the page cache
          const row = line.rows[way.name];
          row.ready_ms.push(e.readyMs);
          row.cpu_until_ready_ms.push(e.cpuMs);
          row.cpu_after_ms.push(after);
        } finally {
          await stopEnvd(e.child);
        }
      }
  load.push(loadavg()[0]);
  const result = {
    bench: 'envd-bound-socket',
    date: new Date().toISOString(),
    rounds,
    after_ms: afterMs,
    load_average: load.map((l) => Math.round(l * 100) / 100),
    lines: {},
  };
  for (const line of lines)
    result.lines[line.version] = Object.fromEntries(
      Object.entries(line.rows).map(([way, row]) => [
        way,
        Object.fromEntries(Object.entries(row).map(([k, v]) => [k, stats(v)])),
      ]),
    );
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
