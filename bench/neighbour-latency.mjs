#!/usr/bin/env node
// Exec latency in a neighbour capsule (prints JSON): `true` through the native API in team B's
// `minimal` capsule, p50/p99, idle and while team A's capsule runs each exhaustion attack of the
// security suite as root (fork bomb, memory, CPU, file handles, inotify, pipes, disk; each bounded
// to a few seconds), with p99_attack / p99_idle per attack (issue 14's goal: at most 2).
// Run as root after `npm run build`, alone on the machine (flock /tmp/wrenn-tests.lock): it uses
// the security suite's fixture and test network slot, and removes everything it made.
// BENCH_N: idle calls (200). BENCH_ATTACKS=fds,cpu: only those attacks. BENCH_FD_CAP=N: the file-handle
// attack's processes stop at N open files each (default: their hard limit), to see how B's p99 and
// this machine's PID 1 follow the number of files the attacker holds. BENCH_CONTROL_NICE=N (an
// experiment, issue 14): once both capsules run, this process (control plane + agent) and B's envd
// get nice N (all their threads); A and everything A runs stay at nice 0. B's envd hands N on to
// the `true` it starts (a small bias in B's favour, which only makes a miss more telling).
// BENCH_ENVD_NICE=M: B's envd gets M instead (0: only the agent side is raised).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { ATTACK_SECS, attacks, runAttack } from '../packages/control-plane/dist/test/security/attacks.js';
import { PROBE, TwoTeams } from '../packages/control-plane/dist/test/security/two-teams.js';

const IDLE_N = Number(process.env.BENCH_N ?? 200);
const ONLY = process.env.BENCH_ATTACKS ? process.env.BENCH_ATTACKS.split(',') : undefined;
const FD_CAP = process.env.BENCH_FD_CAP ? Number(process.env.BENCH_FD_CAP) : undefined;
const CONTROL_NICE = process.env.BENCH_CONTROL_NICE ? Number(process.env.BENCH_CONTROL_NICE) : undefined;
if (CONTROL_NICE !== undefined && !(Number.isInteger(CONTROL_NICE) && CONTROL_NICE >= -20 && CONTROL_NICE <= 19))
  throw new Error('BENCH_CONTROL_NICE must be an integer -20..19');
const ENVD_NICE = process.env.BENCH_ENVD_NICE ? Number(process.env.BENCH_ENVD_NICE) : CONTROL_NICE;
if (ENVD_NICE !== undefined && !(Number.isInteger(ENVD_NICE) && ENVD_NICE >= -20 && ENVD_NICE <= 19))
  throw new Error('BENCH_ENVD_NICE must be an integer -20..19');
/** setpriority on every thread of a process (on Linux a nice value belongs to each thread). */
const reniceAllThreads = (pid, nice) => {
  for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), nice);
};
const FD_PROCS = 256; // as the security suite's fds attack
/** The root attacks to run, the file-handle one with BENCH_FD_CAP's cap when given. */
const chosenAttacks = () =>
  attacks()
    .filter((a) => a.who === 'root' && (!ONLY || ONLY.includes(a.name)))
    .map((a) =>
      a.name === 'fds' && FD_CAP !== undefined
        ? { ...a, command: (out) => `${PROBE} fds ${ATTACK_SECS} ${FD_PROCS} ${FD_CAP} > ${out} 2>&1 < /dev/null &` }
        : a,
    );
const GOAL_RATIO = 2;
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x) => Math.round(x * 100) / 100;
const summary = (xs) =>
  xs.length
    ? { p50_ms: round(pct(xs, 50)), p99_ms: round(pct(xs, 99)), max_ms: round(Math.max(...xs)), n: xs.length }
    : { n: 0 };

// CPU seconds a process outside Wrenn used (PID 1 of this machine when it is not ours: a workplace
// supervisor at nice -10 here, whose CPU grows with the open files of the whole host, so it competes
// with B during the file-handle attack). Reported so a reader can tell its share from Wrenn's.
const pid1 = (() => {
  try {
    return readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    return 'unknown';
  }
})();
const pid1CpuSec = () => {
  const f = readFileSync('/proc/1/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
};

// A capsule's memory cgroup (v1), wherever the agent's cgroup parent is.
const memcgDir = (id) => {
  for (const parent of readdirSync('/sys/fs/cgroup/memory', { withFileTypes: true }))
    if (parent.isDirectory() && existsSync(`/sys/fs/cgroup/memory/${parent.name}/${id}`))
      return `/sys/fs/cgroup/memory/${parent.name}/${id}`;
  return undefined;
};
const memStat = (id, key) => {
  const dir = memcgDir(id);
  if (!dir) return null;
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(`${dir}/memory.stat`, 'utf8'));
  return m ? Number(m[1]) : null;
};
const memFile = (id, file) => {
  const dir = memcgDir(id);
  return dir ? Number(readFileSync(`${dir}/${file}`, 'utf8')) : null;
};

// A small capsule disk so the disk attack reaches ENOSPC within its time, as in the security suite.
const t = await TwoTeams.start({ capsuleDiskMb: 256 });
/** The pid of a capsule's envd (the process in its memory cgroup running envd's bundle). */
const envdPid = (id) => {
  for (const pid of readFileSync(`${memcgDir(id)}/cgroup.procs`, 'utf8')
    .split('\n')
    .filter(Boolean))
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('envd/start.cjs')) return Number(pid);
  throw new Error(`no envd in capsule ${id}`);
};
if (CONTROL_NICE !== undefined) {
  reniceAllThreads(process.pid, CONTROL_NICE);
  reniceAllThreads(envdPid(t.b.capsule.id), ENVD_NICE);
  // A new capsule A (after an attack killed it) must not inherit the agent's nice: spawn it at 0.
  const replace = t.replaceCapsule.bind(t);
  t.replaceCapsule = async (team) => {
    setPriority(0, 0);
    try {
      await replace(team);
    } finally {
      setPriority(0, CONTROL_NICE);
    }
  };
}
const result = {
  bench: 'neighbour-latency',
  runtime: 'namespace',
  template: 'minimal',
  goal: `p99 during an attack <= ${GOAL_RATIO} x idle p99`,
};
try {
  for (let i = 0; i < 10; i++) await t.execTrueMs(t.b); // warm up
  const idle = [];
  for (let i = 0; i < IDLE_N; i++) idle.push(await t.execTrueMs(t.b));
  result.idle = summary(idle);
  result.pid1 = pid1;
  result.load_avg_at_start = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  if (CONTROL_NICE !== undefined) Object.assign(result, { control_nice: CONTROL_NICE, b_envd_nice: ENVD_NICE });
  if (FD_CAP !== undefined) result.fd_cap_per_process = FD_CAP;
  result.attacks = {};
  for (const attack of chosenAttacks()) {
    if (!(await t.answers(t.a))) await t.replaceCapsule(t.a);
    const times = [];
    const failures = [];
    const cpu0 = pid1CpuSec();
    // B's major faults (pages B uses that had to be read back from disk) and A's memory peak.
    const majflt0 = memStat(t.b.capsule.id, 'total_pgmajfault');
    const aDir = memcgDir(t.a.capsule.id);
    if (aDir) writeFileSync(`${aDir}/memory.max_usage_in_bytes`, '0');
    const started = performance.now();
    const offsets = []; // when each of B's calls started, ms into the attack
    const outcome = await runAttack(t, t.a, attack, async () => {
      const at = Math.round(performance.now() - started);
      try {
        times.push(await t.execTrueMs(t.b));
        offsets.push(at);
      } catch (err) {
        failures.push(String(err?.message ?? err).slice(0, 200));
      }
    });
    const s = summary(times);
    const ratio = s.n ? round(s.p99_ms / result.idle.p99_ms) : null;
    result.attacks[attack.name] = {
      ...s,
      p99_ratio: ratio,
      meets_goal: ratio !== null && ratio <= GOAL_RATIO && failures.length === 0,
      failures: failures.length,
      ...(failures.length ? { first_failure: failures[0] } : {}),
      // B's five slowest calls: [ms into the attack, duration ms] (when in the attack the tail happens).
      slowest: times
        .map((ms, i) => [offsets[i], round(ms)])
        .sort((x, y) => y[1] - x[1])
        .slice(0, 5),
      attacker: outcome.attacker.state,
      // The probe's report (e.g. how many files the fds attack's processes held).
      attack_report: outcome.output.trim().slice(0, 300),
      pid1_cpu_s: Math.round((pid1CpuSec() - cpu0) * 100) / 100,
      b_major_faults: majflt0 === null ? null : memStat(t.b.capsule.id, 'total_pgmajfault') - majflt0,
      a_memory_peak_of_limit: aDir
        ? round(memFile(t.a.capsule.id, 'memory.max_usage_in_bytes') / memFile(t.a.capsule.id, 'memory.limit_in_bytes'))
        : null,
    };
  }
  result.missed_goal = Object.entries(result.attacks)
    .filter(([, a]) => !a.meets_goal)
    .map(([name]) => name);
} finally {
  await t.close();
}
// One line: the control plane may log errors on stdout while an attacker capsule is down.
console.log(JSON.stringify(result));
