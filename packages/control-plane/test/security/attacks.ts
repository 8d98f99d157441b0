// The exhaustion attacks a hostile tenant runs in its capsule (fork bomb, memory, CPU, file
// handles, inotify, pipes, disk), each bounded in time (it stops itself, and is killed after), and
// one runner that starts an attack in team A's capsule, keeps calling a neighbour check while it
// lasts, then stops it and waits until A is usable again or cleanly dead. Shared by
// exhaustion.test.ts and bench/neighbour-latency.mjs.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { PROBE, type Team, type TwoTeams, type Who } from './two-teams.js';

/** How long each attack runs (it ends itself then; the runner kills what is left). */
export const ATTACK_SECS = 8;
/**
 * The fds attack's processes: at today's RLIMIT_NOFILE (20000) they could hold 5 M files, far more
 * than a capsule's memory limit covers; the per-process cap keeps them below 60 % of fs.file-max,
 * so a host without protection is hurt but not emptied while the test runs.
 */
const FD_PROCS = 256;

export interface Attack {
  name: 'forkbomb' | 'memory' | 'cpu' | 'fds' | 'inotify' | 'pipes' | 'disk';
  who: Who;
  /** The shell command line that starts the attack in the background; its output goes to `out`. */
  command(out: string): string;
}

const fileMax = (): number => Number(readFileSync('/proc/sys/fs/file-max', 'utf8').trim());

const probe = (args: string) => (out: string) => `${PROBE} ${args} > ${out} 2>&1 < /dev/null &`;

/** Every attack, as root; then the ones about per-user kernel state again as the default user. */
export function attacks(): Attack[] {
  const cores = cpus().length;
  const fdCap = Math.floor((fileMax() * 0.6) / FD_PROCS);
  const root: Attack[] = [
    { name: 'forkbomb', who: 'root', command: probe(`forkbomb ${ATTACK_SECS}`) },
    { name: 'memory', who: 'root', command: probe(`memhog ${ATTACK_SECS}`) },
    { name: 'cpu', who: 'root', command: probe(`cpuhog ${ATTACK_SECS} ${cores * 2}`) },
    { name: 'fds', who: 'root', command: probe(`fds ${ATTACK_SECS} ${FD_PROCS} ${fdCap}`) },
    { name: 'inotify', who: 'root', command: probe(`inotify ${ATTACK_SECS} 4`) },
    { name: 'pipes', who: 'root', command: probe(`pipes ${ATTACK_SECS} 4`) },
    {
      name: 'disk',
      who: 'root',
      // busybox timeout bounds dd; the exit line says how it ended (ENOSPC is the expected end).
      command: (out) =>
        `(timeout -s KILL ${ATTACK_SECS} dd if=/dev/zero of=/root/fill bs=1M; echo "dd-exit=$?") > ${out} 2>&1 < /dev/null &`,
    },
  ];
  const user: Attack[] = (['forkbomb', 'fds', 'inotify', 'pipes'] as const).map((name) => ({
    ...root.find((a) => a.name === name)!,
    who: 'user',
  }));
  return [...root, ...user];
}

export interface AttackOutcome {
  /** What the attack printed (the probe's JSON line, dd's messages). */
  output: string;
  /**
   * 'usable': A answered exec again; 'error': A is cleanly dead, its state says why;
   * 'unresponsive': neither within 60 s (what is wrong is in `detail`).
   */
  attacker: { state: 'usable' } | { state: 'error'; error: string } | { state: 'unresponsive'; detail: string };
  /** Milliseconds from the attack's start until it was stopped. */
  ranMs: number;
}

/**
 * Starts `attack` in `attacker`'s capsule, runs `during` over and over until the attack's time is
 * up (at least once), then kills what is left and waits (up to 60 s) for the capsule to answer
 * again or to be marked `error`. `during` errors are collected by the caller; this runner always
 * stops the attack.
 */
export async function runAttack(
  t: TwoTeams,
  attacker: Team,
  attack: Attack,
  during: () => Promise<void>,
): Promise<AttackOutcome> {
  const out = `/tmp/attack-${attack.name}-${attack.who}.out`;
  await t.mustRun(attacker, 'root', `rm -f ${out} /root/fill`);
  const t0 = performance.now();
  await t.mustRun(attacker, attack.who, attack.command(out));
  try {
    do await during();
    while (performance.now() - t0 < ATTACK_SECS * 1000);
  } finally {
    await stopAttack(t, attacker);
  }
  const ranMs = performance.now() - t0;
  const end = Date.now() + 60_000;
  for (;;) {
    const r = await t
      .run(attacker, 'root', `cat ${out}; rm -f /root/fill`, 20)
      .catch((e: unknown) => ({ exit_code: -1, stdout: '', error: String(e) }));
    if (r.exit_code === 0) return { output: r.stdout, attacker: { state: 'usable' }, ranMs };
    const st = await t.state(attacker);
    if (st.state === 'error') return { output: '', attacker: { state: 'error', error: st.error ?? '' }, ranMs };
    if (Date.now() > end) {
      const detail = `state ${st.state}; last exec: ${JSON.stringify(r)}`;
      return { output: '', attacker: { state: 'unresponsive', detail }, ranMs };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Lets the attack end by itself (it prints its report then) for up to 3 s, then kills what is left. */
async function stopAttack(t: TwoTeams, attacker: Team): Promise<void> {
  const ended = 'for i in $(seq 30); do pidof hostile-probe dd >/dev/null || exit 0; usleep 100000; done; exit 1';
  const r = await t.run(attacker, 'root', ended, 20).catch(() => undefined);
  if (r?.exit_code === 0) return;
  // The attack processes are the probe, dd and their children: kill them by name until none is left
  // (a fork bomb can outrun one pass). Failures are fine here: the capsule may be too busy to
  // answer yet; the runner then waits for it.
  const kill = `for i in 1 2 3 4 5; do killall -q -9 hostile-probe dd timeout 2>/dev/null || break; usleep 100000; done; true`;
  await t.run(attacker, 'root', kill, 20).catch(() => undefined);
}
