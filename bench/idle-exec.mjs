#!/usr/bin/env node
// What an exec into an idle capsule costs the capsule (issue 15: at 1,000 idle capsules each exec
// lands in a capsule that has been idle for a while). Starts the density bench's stack (`wrenn up`
// in a process of its own), creates a few idle `minimal` capsules, and after each idle period runs
// `true` in every capsule through `POST /v1/capsules/{id}/exec` twice: the first exec after the idle
// period ("cold") and one right after it ("warm"). For each it reads the CPU the capsule's cgroup
// used (cpuacct, envd and the command) and envd's page faults (minor/major, /proc/<pid>/stat), so
// the cost of coming back from idleness (pages given up by envd's idle-memory release, V8 state
// dropped while idle) shows as cold minus warm. Prints JSON; run alone on the machine:
//   flock /tmp/wrenn-tests.lock node bench/idle-exec.mjs [--capsules 4] [--idle-sec 15,60] [--rounds 1]
// Every capsule is destroyed and the stack removed at the end, also after a failure or Ctrl-C.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { timedAdminApi } from './lib/admin-api.mjs';
import { removeCgroupParent } from './lib/cgroup-parent.mjs';
import { spawnDensityStack, DENSITY_STACK_SCRIPT as stackScript } from './lib/spawn-density-stack.mjs';

const { values: opt } = parseArgs({
  options: {
    capsules: { type: 'string', default: '4' },
    'idle-sec': { type: 'string', default: '15,60' },
    rounds: { type: 'string', default: '1' },
    template: { type: 'string', default: 'minimal' },
  },
});
const CAPSULES = Number(opt.capsules);
const IDLE = opt['idle-sec'].split(',').map(Number);
const ROUNDS = Number(opt.rounds);
if (!(CAPSULES >= 1) || IDLE.some((s) => !(s >= 0)) || !(ROUNDS >= 1)) {
  process.stderr.write('usage: idle-exec.mjs [--capsules N>=1] [--idle-sec S,S,...] [--rounds N>=1]\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) throw new Error('run as root (the host agent needs namespaces, cgroups and iptables)');

const progress = (line) => process.stderr.write(`[idle-exec ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
};

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-idle-exec-'));
const imagesDir = process.env.WRENN_IMAGES_DIR ?? '/var/cache/wrenn-test-images';
let stack;

let tornDown;
function teardown() {
  tornDown ??= (async () => {
    if (stack) {
      progress('stopping the stack (destroys every capsule)');
      stack.child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => {
        timer = setTimeout(() => r({ code: 'timeout' }), 5 * 60_000);
      });
      const done = await Promise.race([stack.exited, timeout]);
      clearTimeout(timer);
      if (done.code !== 0) {
        progress(`the stack ended with ${done.signal ?? done.code}; cleaning up from its data dir`);
        stack.child.kill('SIGKILL');
        spawn(process.execPath, [stackScript, JSON.stringify({ dataDir, imagesDir }), '--cleanup'], {
          stdio: 'inherit',
        });
      }
      removeCgroupParent(stack.cgroupParent);
    }
    rmSync(dataDir, { recursive: true, force: true });
  })();
  return tornDown;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
  process.on(sig, () => void teardown().finally(() => process.exit(130)));

/** The admin's call to the stack's API under /v1: { json, ms }; errors carry status and code. */
const api = (method, path, body) => timedAdminApi(stack)(method, `/v1${path}`, body);

const cgroupDir = (id) => `/sys/fs/cgroup/cpuacct/${stack.cgroupParent}/${id}`;
const cpuNs = (id) => Number(readFileSync(join(cgroupDir(id), 'cpuacct.usage'), 'utf8'));

function procsOf(dir) {
  const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) pids.push(...procsOf(join(dir, e.name)));
  return pids;
}
/** envd's pid: the process of the capsule running the envd bundle. */
function envdPid(id) {
  for (const pid of procsOf(cgroupDir(id))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('envd')) return pid;
    } catch {
      // gone
    }
  }
  throw new Error(`no envd process in capsule ${id}'s cgroup`);
}
function faults(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { minor: Number(f[7]), major: Number(f[9]) }; // minflt, majflt (fields 10 and 12)
}
function rssKb(pid) {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : null;
}

/** One exec of `true`: the capsule's CPU, envd's page faults, the call's latency. */
async function measuredExec(id) {
  const pid = envdPid(id);
  const c0 = cpuNs(id);
  const f0 = faults(pid);
  const r = await api('POST', `/capsules/${id}/exec`, { cmd: 'true' });
  if (r.json.exit_code !== 0) throw new Error(`exec true in ${id}: exit ${r.json.exit_code} ${r.json.error ?? ''}`);
  const f1 = faults(pid);
  return { cpu_ms: (cpuNs(id) - c0) / 1e6, minflt: f1.minor - f0.minor, majflt: f1.major - f0.major, ms: r.ms };
}

const result = { bench: 'idle-exec', template: opt.template, capsules: CAPSULES, idle_sec: IDLE, rounds: ROUNDS };
try {
  progress('starting the stack');
  stack = await spawnDensityStack({ dataDir, template: opt.template, imagesDir });
  const ids = [];
  for (let i = 0; i < CAPSULES; i++)
    ids.push((await api('POST', '/capsules', { template: opt.template, timeout_sec: 0 })).json.id);
  progress(`${ids.length} capsules created`);
  result.phases = [];
  for (let round_ = 0; round_ < ROUNDS; round_++) {
    for (const idleSec of IDLE) {
      progress(`round ${round_ + 1}: idle ${idleSec} s`);
      await sleep(idleSec * 1000);
      const cold = [];
      const warm = [];
      const pssBefore = ids.map((id) => rssKb(envdPid(id)));
      for (const id of ids) {
        cold.push(await measuredExec(id));
        warm.push(await measuredExec(id));
      }
      const figures = (xs) => ({
        cpu_ms: round(median(xs.map((x) => x.cpu_ms))),
        minflt: median(xs.map((x) => x.minflt)),
        majflt: median(xs.map((x) => x.majflt)),
        latency_ms: round(median(xs.map((x) => x.ms))),
      });
      const phase = {
        round: round_ + 1,
        idle_sec: idleSec,
        envd_pss_mb_before: round(median(pssBefore) / 1024),
        cold: figures(cold),
        warm: figures(warm),
      };
      result.phases.push(phase);
      progress(JSON.stringify(phase));
    }
  }
} catch (err) {
  result.error = String(err?.stack ?? err);
  process.exitCode = 1;
} finally {
  await teardown();
}
console.log(JSON.stringify(result, null, 2));
