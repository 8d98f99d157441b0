#!/usr/bin/env node
// How many idle capsules one host holds, and what each costs (issue 15). Starts a `wrenn up` stack
// (bench/lib/density-stack.mjs: control plane + local host agent + SQLite on a temp data dir, in a
// process of its own) and steps through N live idle capsules created through POST /v1/capsules,
// `--batch` at a time. At each step: exec `true` p50/p99 over random capsules (one at a time; the
// first call after the idle window is reported alone, exec_first_after_idle_ms, not in the percentiles),
// create p50/p99 (every create since the previous step, and the batch that reached the step),
// host CPU while idle over `--idle-sec` from /proc/stat (whole machine, and how much of it was the
// stack process and the capsules' cgroups), PSS per capsule (smaps_rollup of every process in its
// memory cgroup), the stack's RSS, fds and threads, GET /v1/capsules time, and the CPU each create
// and each exec cost the stack process (with the commands it ran) and the capsules: figures that
// hold when other work shares the machine. The first create that fails ends the run: its error is
// the limit found. Prints JSON; progress goes to stderr.
//
// Usage (root, after `npm run build`, alone on the machine):
//   flock /tmp/wrenn-tests.lock node bench/density.mjs [--steps 10,100,500,1000] [--template minimal]
//     [--batch 10] [--execs 100] [--idle-sec 10] [--settle-sec 5] [--warm-pool 0] [--images-dir DIR] [--keep] [--perf-map] [--split]
//     [--max-minutes N]
// --keep: after measuring, leave the stack and its capsules up (URL and key on stderr) until Ctrl-C.
// --split: control plane and host agent in two processes (`wrenn server` + a registered `wrenn agent`,
//   called over HTTP/2 as a remote host is) instead of `wrenn up`'s one, so each one's RSS and CPU show.
// --max-minutes N: stop creating once the run is N minutes old and measure the step where it got to.
// --perf-map: the stack's node writes /tmp/perf-<pid>.map so `perf report` names its JS functions.
// Whatever happens (Ctrl-C, a failure, the stack crashing) every capsule is destroyed and the stack,
// its networks, cgroups, mounts and data dir removed. Not run by `npm run bench` (it takes long).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { timedAdminApi } from './lib/admin-api.mjs';
import { removeCgroupParent } from './lib/cgroup-parent.mjs';
import { spawnDensityStack } from './lib/spawn-density-stack.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    steps: { type: 'string', default: '10,100,500,1000' },
    template: { type: 'string', default: 'minimal' },
    batch: { type: 'string', default: '10' },
    execs: { type: 'string', default: '100' },
    'idle-sec': { type: 'string', default: '10' },
    'settle-sec': { type: 'string', default: '5' },
    'warm-pool': { type: 'string', default: '0' },
    'images-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
    'perf-map': { type: 'boolean', default: false },
    split: { type: 'boolean', default: false },
    'max-minutes': { type: 'string', default: '0' },
  },
});
const wholeNumber = (name, min) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < min) usage(`--${name} ${opt[name]}: want a whole number >= ${min}`);
  return n;
};
function usage(msg) {
  process.stderr.write(
    `density: ${msg}\nusage: node bench/density.mjs [--steps 10,100,500,1000] [--template minimal] [--batch 10] [--execs 100] [--idle-sec 10] [--settle-sec 5] [--warm-pool 0] [--images-dir DIR] [--keep] [--perf-map] [--split] [--max-minutes N]\n`,
  );
  process.exit(2);
}
const steps = opt.steps.split(',').map((s) => Number(s.trim()));
if (steps.some((n) => !Number.isInteger(n) || n < 1) || steps.some((n, i) => i && n <= steps[i - 1]))
  usage(`--steps ${opt.steps}: want increasing whole numbers, e.g. 10,100,500,1000`);
if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(opt.template)) usage(`--template ${opt.template}: not a template name`);
const BATCH = wholeNumber('batch', 1);
const EXECS = wholeNumber('execs', 1);
const IDLE_SEC = wholeNumber('idle-sec', 1);
const SETTLE_SEC = wholeNumber('settle-sec', 0);
const WARM_POOL = wholeNumber('warm-pool', 0);
// Creating stops once the run is this old (0: never); the step in progress is measured where it got to.
const MAX_MINUTES = wholeNumber('max-minutes', 0);
const runStart = performance.now();
const outOfTime = () => MAX_MINUTES > 0 && performance.now() - runStart > MAX_MINUTES * 60_000;
if (process.getuid?.() !== 0) usage('run as root (the host agent needs namespaces, cgroups and iptables)');
// The shared template cache of the tests, when present, so `minimal` is not built again.
const imagesDir =
  opt['images-dir'] ?? (existsSync('/var/cache/wrenn-test-images') ? '/var/cache/wrenn-test-images' : undefined);

const progress = (line) => process.stderr.write(`[density ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x, d = 2) => (x === null || x === undefined ? x : Math.round(x * 10 ** d) / 10 ** d);
const summary = (xs) =>
  xs.length
    ? { p50_ms: round(pct(xs, 50), 1), p99_ms: round(pct(xs, 99), 1), max_ms: round(Math.max(...xs), 1), n: xs.length }
    : { n: 0 };
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

// ---- the stack ------------------------------------------------------------------------------

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-density-'));
const stackScript = join(here, 'lib', 'density-stack.mjs');
const stackOptions = JSON.stringify({
  split: opt.split,
  dataDir,
  template: opt.template,
  warmPool: WARM_POOL,
  ...(imagesDir ? { imagesDir } : {}),
});
let stack; // { child, url, adminKey, pid, cgroupParent }
let cgroupParent = 'wrenn-bench-density';

function startStack() {
  return spawnDensityStack(JSON.parse(stackOptions), opt['perf-map'] ? ['--perf-basic-prof'] : []);
}

let tornDown;
function teardown() {
  tornDown ??= (async () => {
    if (stack) {
      progress('stopping the stack (destroys every capsule)');
      stack.child.kill('SIGTERM');
      const done = await Promise.race([stack.exited, sleep(20 * 60_000).then(() => ({ code: 'timeout' }))]);
      if (done.code !== 0) {
        progress(`the stack ended with ${done.signal ?? done.code}; cleaning up from its data dir`);
        stack.child.kill('SIGKILL');
        cleanupFromDataDir();
      }
    } else if (existsSync(join(dataDir, 'wrenn.db'))) {
      cleanupFromDataDir();
    }
    removeCgroupParent(cgroupParent);
    rmSync(dataDir, { recursive: true, force: true });
  })();
  return tornDown;
}

/** A stack that crashed left capsules: a new one on the same data dir takes them back and destroys them. */
function cleanupFromDataDir() {
  try {
    execFileSync(process.execPath, [stackScript, stackOptions, '--cleanup'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 20 * 60_000,
    });
  } catch (err) {
    progress(`cleanup failed: ${err.message}`);
  }
}

let interrupted = false;
let printed = false; // the JSON went out already (--keep prints it before waiting)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    progress(`${sig}: cleaning up`);
    const liveThen = live.length;
    void teardown().finally(() => {
      // What was measured before the signal still counts: a long run stopped by hand reports it.
      result.interrupted = { signal: sig, live_capsules: liveThen, first_failure: firstFailure ?? null };
      if (!printed) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.exit(130);
    });
  });
}

// ---- the API --------------------------------------------------------------------------------

/** The admin's call to the stack's API under /v1: { json, ms }; errors carry status and code. */
const api = (method, path, body) => timedAdminApi(stack)(method, `/v1${path}`, body);

// ---- host figures ---------------------------------------------------------------------------

function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return {
    busy: user + nice + system + irq + softirq + steal,
    total: f.slice(0, 8).reduce((a, b) => a + b, 0),
    system: system + irq + softirq,
    iowait,
    idle,
  };
}
function processTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // utime stime cutime cstime are fields 14..17 (1-based): index 11..14 after the command.
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}
function cgroupCpuNs() {
  try {
    return Number(readFileSync(`/sys/fs/cgroup/cpuacct/${cgroupParent}/cpuacct.usage`, 'utf8'));
  } catch (err) {
    // The agent makes the parent with its first capsule: none yet is no CPU yet.
    return err.code === 'ENOENT' ? 0 : undefined;
  }
}

/** The stack's processes: one for `wrenn up`; control plane and agent with --split. */
function stackPids() {
  return stack.agentPid ? { control_plane: stack.pid, agent: stack.agentPid } : { up: stack.pid };
}
const stackTicks = () => Object.values(stackPids()).reduce((t, pid) => t + processTicks(pid), 0);

/** CPU counters now: to split the cost of a phase into the stack process, the capsules and the rest. */
function cpuMark() {
  return { machine: machineTicks(), stack: stackTicks(), capsules: cgroupCpuNs() };
}
/** CPU milliseconds per operation since `a` (stack: agent and control plane with the commands they ran). */
function cpuPerOp(a, ops) {
  const b = cpuMark();
  const per = (ms) => round(ms / Math.max(1, ops), 1);
  return {
    stack_cpu_ms: per(((b.stack - a.stack) * 1000) / CLK_TCK),
    capsules_cpu_ms: a.capsules === undefined || b.capsules === undefined ? null : per((b.capsules - a.capsules) / 1e6),
    machine_busy_pct: round((100 * (b.machine.busy - a.machine.busy)) / Math.max(1, b.machine.total - a.machine.total)),
  };
}

/** CPU of the machine while nothing is asked of the stack: whole machine, the stack process, the capsules. */
async function idleCpu(seconds) {
  const m0 = machineTicks();
  const each0 = Object.entries(stackPids()).map(([name, pid]) => [name, processTicks(pid)]);
  const s0 = stackTicks();
  const c0 = cgroupCpuNs();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const wallS = (performance.now() - t0) / 1000;
  const m1 = machineTicks();
  const s1 = stackTicks();
  const c1 = cgroupCpuNs();
  const each = stack.agentPid
    ? Object.fromEntries(
        each0.map(([name, t]) => [`${name}_pct`, ((processTicks(stackPids()[name]) - t) * 100) / CLK_TCK]),
      )
    : {};
  const cores = cpus().length;
  const total = m1.total - m0.total;
  const ofMachine = (cpuSeconds) => round((100 * cpuSeconds) / (wallS * cores));
  return {
    seconds: round(wallS, 1),
    machine_pct: round((100 * (m1.busy - m0.busy)) / total),
    machine_kernel_pct: round((100 * (m1.system - m0.system)) / total),
    stack_process_pct: ofMachine((s1 - s0) / CLK_TCK),
    ...Object.fromEntries(Object.entries(each).map(([k, pctOfCore]) => [k, round(pctOfCore / wallS / cores)])),
    capsules_pct: c0 === undefined || c1 === undefined ? null : ofMachine((c1 - c0) / 1e9),
    // One idle capsule's CPU in ms per second (issue 15: an idle envd under 0.1 % of a core = 1 ms/s).
    per_capsule_ms_per_s:
      c0 === undefined || c1 === undefined || !live.length ? null : round((c1 - c0) / 1e6 / wallS / live.length, 3),
    loadavg_1m: round(loadavg()[0]),
  };
}

function procsOfCgroup(dir) {
  const pids = [];
  try {
    pids.push(...readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean));
    for (const e of readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) pids.push(...procsOfCgroup(join(dir, e.name)));
  } catch {
    // went away meanwhile
  }
  return pids;
}
function pssKb(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** PSS of every process in each capsule's memory cgroup, summed per capsule, averaged. */
function pssPerCapsule() {
  const root = `/sys/fs/cgroup/memory/${cgroupParent}`;
  const per = [];
  let procs = 0;
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const pids = procsOfCgroup(join(root, e.name));
    if (!pids.length) continue;
    procs += pids.length;
    per.push(pids.reduce((kb, pid) => kb + pssKb(pid), 0) / 1024);
  }
  const avg = per.reduce((a, b) => a + b, 0) / Math.max(1, per.length);
  return {
    avg_mb: round(avg),
    min_mb: round(Math.min(...per)),
    max_mb: round(Math.max(...per)),
    capsules: per.length,
    processes_per_capsule: round(procs / Math.max(1, per.length)),
  };
}

function processFigures(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return {
    rss_mb: round(kb('VmRSS') / 1024, 1),
    peak_rss_mb: round(kb('VmHWM') / 1024, 1),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0),
  };
}
/** `wrenn up` runs the control plane and the host agent in one process; --split has one each. */
function stackProcess() {
  if (!stack.agentPid) return processFigures(stack.pid);
  const control_plane = processFigures(stack.pid);
  const agent = processFigures(stack.agentPid);
  return {
    rss_mb: round(control_plane.rss_mb + agent.rss_mb, 1),
    fds: control_plane.fds + agent.fds,
    control_plane,
    agent,
  };
}
function memAvailableMb() {
  return round(Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 1024, 0);
}

// ---- the steps ------------------------------------------------------------------------------

const live = []; // capsule ids
let firstFailure;

/** Creates capsules `BATCH` at a time until `target` are live or one fails; the times of each create. */
async function createUpTo(target) {
  const all = [];
  let last = [];
  while (live.length < target && !firstFailure && !interrupted && !outOfTime()) {
    const n = Math.min(BATCH, target - live.length);
    const batch = await Promise.allSettled(
      Array.from({ length: n }, () => api('POST', '/capsules', { template: opt.template, timeout_sec: 0 })),
    );
    last = [];
    for (const r of batch) {
      if (r.status === 'fulfilled') {
        live.push(r.value.json.id);
        last.push(r.value.ms);
      } else if (!firstFailure) {
        firstFailure = {
          live_capsules: live.length,
          status: r.reason.status ?? null,
          code: r.reason.code ?? null,
          error: String(r.reason.message).slice(0, 500),
        };
      }
    }
    all.push(...last);
    if (live.length % 50 === 0 || live.length === target || firstFailure)
      progress(
        `${live.length}/${target} live, create p50 ${round(pct(last.length ? last : [0], 50), 0)} ms in the last batch${firstFailure ? `; create failed: ${firstFailure.error}` : ''}`,
      );
  }
  return { all, last };
}

async function firstExecAfterIdle() {
  const id = live[Math.floor(Math.random() * live.length)];
  const r = await api('POST', `/capsules/${id}/exec`, { cmd: 'true' });
  if (r.json.exit_code !== 0) throw new Error(`exec true in ${id} after the idle window: exit ${r.json.exit_code}`);
  return Math.round(r.ms * 10) / 10;
}

async function execs(n) {
  const times = [];
  const failures = [];
  for (let i = 0; i < n && !interrupted; i++) {
    const id = live[Math.floor(Math.random() * live.length)];
    try {
      const r = await api('POST', `/capsules/${id}/exec`, { cmd: 'true' });
      if (r.json.exit_code !== 0) failures.push(`${id}: exit ${r.json.exit_code} ${r.json.error ?? ''}`);
      else times.push(r.ms);
    } catch (err) {
      failures.push(`${id}: ${err.message}`);
    }
  }
  return {
    ...summary(times),
    failures: failures.length,
    ...(failures.length ? { first_failure: failures[0].slice(0, 300) } : {}),
  };
}

async function listAll() {
  const times = [];
  let count = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    count = 0;
    let cursor;
    do {
      const { json } = await api('GET', `/capsules?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      count += json.capsules.length;
      cursor = json.next_cursor;
    } while (cursor);
    times.push(performance.now() - t0);
  }
  return { ...summary(times), listed: count };
}

const gitHead = (() => {
  try {
    return execFileSync('git', ['-C', here, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
})();
const result = {
  bench: 'density',
  runtime: 'namespace',
  template: opt.template,
  date: new Date().toISOString(),
  commit: gitHead,
  machine: { cores: cpus().length, memory_gb: round(totalmem() / 2 ** 30, 1), kernel: release() },
  settings: {
    stack: opt.split ? 'control plane + agent (split)' : 'wrenn up',
    batch: BATCH,
    execs: EXECS,
    idle_sec: IDLE_SEC,
    settle_sec: SETTLE_SEC,
    warm_pool: WARM_POOL,
  },
  goals: {
    idle_machine_cpu_pct_at_1000: 5,
    exec_p99_ms_at_1000: 50,
    exec_p99_ratio_vs_10: 2,
    create_p50_ratio_vs_10: 2,
  },
  steps: [],
};

let exitCode = 0;
try {
  progress(`starting the stack on ${dataDir}${imagesDir ? ` (templates from ${imagesDir})` : ''}`);
  stack = await startStack();
  cgroupParent = stack.cgroupParent ?? cgroupParent;
  progress(`stack up at ${stack.url} (pid ${stack.pid}); machine CPU with no capsules for ${IDLE_SEC} s ...`);
  // The floor: what the machine (other work included) and the bare stack use before any capsule.
  result.baseline = { idle_cpu: await idleCpu(IDLE_SEC), stack: stackProcess(), mem_available_mb: memAvailableMb() };
  progress(
    `baseline: machine ${result.baseline.idle_cpu.machine_pct} %, stack ${result.baseline.idle_cpu.stack_process_pct} %`,
  );

  for (const target of steps) {
    if (interrupted) break;
    const t0 = performance.now();
    const before = cpuMark();
    const created = await createUpTo(target);
    const step = { live_capsules: live.length, target, create_minutes: round((performance.now() - t0) / 60_000) };
    step.create = summary(created.all);
    step.create_cpu_per_capsule = cpuPerOp(before, created.all.length);
    step.create_last_batch = summary(created.last);
    if (!live.length || interrupted) {
      result.steps.push(step);
      break;
    }
    await sleep(SETTLE_SEC * 1000);
    progress(`${live.length} live: idle CPU for ${IDLE_SEC} s ...`);
    step.idle_cpu = await idleCpu(IDLE_SEC);
    progress(`${live.length} live: ${EXECS} execs ...`);
    // The first call after the idle window is reported on its own: on this machine (a nested guest)
    // any process woken after seconds of idleness answers its first request 50-130 ms late (a plain
    // node HTTP server and client show it too), which would otherwise be the p99 of every step.
    step.exec_first_after_idle_ms = await firstExecAfterIdle();
    const beforeExecs = cpuMark();
    step.exec_true = await execs(EXECS);
    step.exec_cpu_per_call = cpuPerOp(beforeExecs, EXECS);
    step.list_capsules = await listAll();
    step.pss_per_capsule = pssPerCapsule();
    step.stack = stackProcess();
    step.mem_available_mb = memAvailableMb();
    // A signal during the measurements means the teardown ran beside them: say so.
    if (interrupted) step.measured_while_tearing_down = true;
    result.steps.push(step);
    progress(
      `${live.length} live: machine CPU ${step.idle_cpu.machine_pct} % (stack ${step.idle_cpu.stack_process_pct} %, capsules ${step.idle_cpu.capsules_pct} %, ${step.idle_cpu.per_capsule_ms_per_s} ms/s each), ` +
        `exec p50/p99 ${step.exec_true.p50_ms}/${step.exec_true.p99_ms} ms (first after idle ${step.exec_first_after_idle_ms} ms), create p50/p99 ${step.create.p50_ms}/${step.create.p99_ms} ms ` +
        `(stack CPU ${step.create_cpu_per_capsule.stack_cpu_ms} ms/create), ` +
        `PSS ${step.pss_per_capsule.avg_mb} MB/capsule, stack RSS ${step.stack.agent ? `cp ${step.stack.control_plane.rss_mb} + agent ${step.stack.agent.rss_mb}` : step.stack.rss_mb} MB, list ${step.list_capsules.p50_ms} ms`,
    );
    if (firstFailure || outOfTime()) break;
  }
  result.limit = firstFailure
    ? { reached: live.length, first_failure: firstFailure }
    : {
        reached: live.length,
        first_failure: null,
        note: `every create up to ${live.length} succeeded${outOfTime() ? ` (stopped by --max-minutes ${MAX_MINUTES})` : ''}`,
      };
  const first = result.steps[0];
  const lastStep = result.steps.at(-1);
  if (first?.exec_true?.p99_ms && lastStep?.exec_true?.p99_ms) {
    result.ratios_last_vs_first = {
      steps: [first.live_capsules, lastStep.live_capsules],
      exec_p99: round(lastStep.exec_true.p99_ms / first.exec_true.p99_ms),
      create_p50: round(lastStep.create.p50_ms / first.create.p50_ms),
    };
  }
  if (opt.keep && !interrupted) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    printed = true;
    progress(
      `--keep: ${live.length} capsules stay up at ${stack.url} (X-API-Key: ${stack.adminKey}, stack pid ${stack.pid}); Ctrl-C destroys them`,
    );
    await new Promise(() => {}); // until a signal
  }
} catch (err) {
  result.error = String(err?.stack ?? err).slice(0, 1000);
  exitCode = 1;
} finally {
  if (!interrupted) await teardown();
}
if (!interrupted) {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exit(exitCode);
}
