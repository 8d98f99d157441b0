#!/usr/bin/env node
// Where envd's start CPU goes on each Node line (prints JSON): the machine's node and .ci/node-lines
// (or the versions given), each running a bundle and code cache made by that node, started as a
// capsule's init starts it (clean environment, ready on fd 3) with a `-r` probe that reads the
// process's CPU time (process.cpuUsage) at three points: when the probe runs (node's bootstrap up
// to the first user code), when start.cjs hands the bundle to V8 (node's modules it preloads and
// the code cache read) and when envd says ready (the bundle's compile from the cache, evaluation,
// listening). Lines take turns round by round; p50 / min per phase, the first round warms up.
// Usage (after `npm run build`): node bench/envd-start-phases.mjs [--rounds 16] [versions...]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchNodeLines, bundleWith } from './lib/envd-host-start.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const argv = process.argv.slice(2);
const i = argv.indexOf('--rounds');
const rounds = i >= 0 ? Number(argv[i + 1]) : 16;
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 200) throw new Error('--rounds must be 1..200');
const lines = benchNodeLines(argv.filter((a) => /^\d+\.\d+\.\d+$/.test(a)));

/** The probe: CPU at load, before the bundle's Script runs, and at "ready" on fd 3. */
const PROBE = `const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const t = { bootstrap: cpu() };
const fs = require('node:fs');
const writeSync = fs.writeSync;
fs.writeSync = function (fd, s, ...rest) {
  if (fd === 3 && String(s).startsWith('ready')) process.stderr.write('PHASES ' + JSON.stringify({ ...t, ready: cpu() }) + '\\n');
  return writeSync.call(this, fd, s, ...rest);
};
const vm = require('node:vm');
const run = vm.Script.prototype.runInThisContext;
vm.Script.prototype.runInThisContext = function (...a) { t.bundle = cpu(); return run.apply(this, a); };
`;

const work = mkdtempSync(join(tmpdir(), 'wrenn-bench-start-phases-'));
try {
  const probe = join(work, 'probe.cjs');
  writeFileSync(probe, PROBE);
  for (const line of lines) {
    line.bundle = bundleWith(line.node, join(work, `bundle-${line.version}`));
    line.rows = { bootstrap_ms: [], builtins_and_cache_ms: [], bundle_to_ready_ms: [], total_ms: [] };
  }
  const load = [loadavg()[0]];
  for (let r = 0; r <= rounds; r++)
    for (const line of lines) {
      const child = spawn(
        line.node,
        ['-r', probe, join(line.bundle, 'start.cjs'), '--port', '0', '--host', '127.0.0.1'],
        {
          env: { PATH: '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', WRENN_READY_FD: '3' },
          stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      try {
        await new Promise((ok, fail) => {
          const timer = setTimeout(
            () => fail(new Error(`envd (${line.version}) not ready in 15 s: ${stderr}`)),
            15_000,
          );
          child.stdio[3].once('data', () => (clearTimeout(timer), ok()));
          child.once('exit', (code) => (clearTimeout(timer), fail(new Error(`envd exited ${code}: ${stderr}`))));
        });
        for (let k = 0; k < 100 && !/PHASES /.test(stderr); k++) await new Promise((ok) => setTimeout(ok, 5));
      } finally {
        child.kill('SIGKILL');
        if (child.exitCode === null && child.signalCode === null) await new Promise((ok) => child.once('exit', ok));
      }
      if (/code cache rejected/.test(stderr)) throw new Error(`envd on ${line.version} rejected its code cache`);
      const m = /PHASES (.*)/.exec(stderr);
      if (!m) throw new Error(`the probe did not report (${line.version}): ${stderr}`);
      if (r === 0) continue; // warms the page cache
      const t = JSON.parse(m[1]);
      line.rows.bootstrap_ms.push(t.bootstrap);
      line.rows.builtins_and_cache_ms.push(t.bundle - t.bootstrap);
      line.rows.bundle_to_ready_ms.push(t.ready - t.bundle);
      line.rows.total_ms.push(t.ready);
    }
  load.push(loadavg()[0]);
  const result = {
    bench: 'envd-start-phases',
    date: new Date().toISOString(),
    rounds,
    load_average: load.map((l) => Math.round(l * 100) / 100),
    lines: {},
  };
  for (const line of lines)
    result.lines[line.version] = Object.fromEntries(
      Object.entries(line.rows).map(([k, v]) => {
        const s = latencyStats(v, { percentiles: [50] });
        return [k, { p50: s.p50_ms, min: s.min_ms }];
      }),
    );
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
