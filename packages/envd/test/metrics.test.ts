// /metrics inside a capsule-like cgroup: the memory limit and CPU quota of the process's own
// cgroup (v1) become mem_total, cpu_count and the base of cpu_used_pct.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Metrics } from '../src/metrics/collect.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/metrics-child.js', import.meta.url));
const ROOT = '/sys/fs/cgroup';
const v1 = ['memory', 'cpu', 'cpuacct'].every((c) => existsSync(`${ROOT}/${c}/cgroup.procs`));

test('a cgroup v1 memory limit and CPU quota shape the metrics', {
  skip: !v1 || process.getuid?.() !== 0 ? 'needs root and cgroup v1 memory, cpu, cpuacct' : false,
}, async (t) => {
  const name = `wrenn-test-${randomBytes(4).toString('hex')}`;
  const dirs = ['memory', 'cpu', 'cpuacct'].map((c) => `${ROOT}/${c}/${name}`);
  t.after(async () => {
    for (const dir of dirs) {
      for (let i = 0; i < 20 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await sleep(50); // the child's exit may still be settling
        }
      }
    }
  });
  for (const dir of dirs) mkdirSync(dir);
  const limit = 256 * 1024 * 1024;
  writeFileSync(`${ROOT}/memory/${name}/memory.limit_in_bytes`, String(limit));
  writeFileSync(`${ROOT}/cpu/${name}/cpu.cfs_period_us`, '100000');
  writeFileSync(`${ROOT}/cpu/${name}/cpu.cfs_quota_us`, '50000');

  // The shell joins the cgroups, then becomes node: everything the fixture does is charged there.
  const join = dirs.map((d) => `echo $$ > ${d}/cgroup.procs`).join(' && ');
  const child = spawn('/bin/sh', ['-c', `${join} && exec "$0" "$1" 400`, process.execPath, FIXTURE]);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, err);
  const { metrics: m, own } = JSON.parse(out) as { metrics: Metrics; own: { cpuMs: number; wallMs: number } };

  assert.equal(m.mem_total, limit);
  assert.equal(m.mem_total_mib, 256);
  assert.ok(m.mem_used > 1024 * 1024 && m.mem_used < limit, `mem_used ${m.mem_used}`);
  assert.equal(m.cpu_count, 1, 'half a core of quota is one CPU');
  // Percent of the half core the quota allows, against the fixture's own CPU and wall time over the
  // same window (the fixture is the only process in the cgroup). Load on the machine changes both alike.
  const expected = Math.min(100, (own.cpuMs / (own.wallMs * 0.5)) * 100);
  assert.ok(
    Math.abs(m.cpu_used_pct - expected) < 15,
    `cpu_used_pct ${m.cpu_used_pct}, own measure ${expected.toFixed(2)}`,
  );
  assert.ok(m.cpu_used_pct <= 100);
});
