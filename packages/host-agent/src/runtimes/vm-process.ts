// What the VM runtimes (QEMU, Firecracker) share about their VMM process: whether it lives, its
// arguments, killing it and waiting for it to go, the tail of the guest console, waiting for envd
// while watching the VMM, the exit watch of a running VMM and its CPU and memory use.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ENVD_PORT, waitForEnvd } from '../envd-client/index.js';
import { watchPidExit } from './pid-exit-watch.js';
import type { CapsuleStats } from './runtime.js';

/** The guest's serial console, in the capsule's directory. */
export const CONSOLE_LOG = 'console.log';

export function pidAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The arguments of `pid` (empty when it is gone); synchronous for pidfd ownership checks. */
export function processArgsSync(pid: number): string[] {
  let raw = '';
  try {
    raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return [];
  }
  return raw ? raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1) : [];
}

export async function waitGone(pid: number, timeoutMs: number, pollMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return true;
}

/** Kills a VMM and waits until it is gone (its guest memory is freed with it). */
export async function killVmmProcess(pid: number, vmm: string, capsuleId: string): Promise<void> {
  if (!pidAlive(pid)) return;
  process.kill(pid, 'SIGKILL');
  if (!(await waitGone(pid, 10_000))) throw new Error(`${vmm} (pid ${pid}) of ${capsuleId} did not exit after SIGKILL`);
}

/** The last lines of the guest console (what a boot failure shows). */
export async function consoleTail(dir: string): Promise<string> {
  const text = await readFile(join(dir, CONSOLE_LOG), 'utf8').catch(() => '');
  return text.split('\n').slice(-15).join('\n');
}

/**
 * Waits until envd in the guest answers, failing early (with the console's tail) when the VMM
 * exits first.
 */
export async function waitVmReady(
  vm: { pid: number; dir: string; capsuleIp: string },
  timeoutMs: number,
  what = 'the VM',
): Promise<void> {
  let watching = true;
  const died = (async () => {
    while (pidAlive(vm.pid)) {
      await new Promise((r) => setTimeout(r, 100));
      if (!watching) return;
    }
    throw new Error(`${what} stopped before envd was ready; console:\n${await consoleTail(vm.dir)}`);
  })();
  try {
    await Promise.race([waitForEnvd(vm.capsuleIp, timeoutMs, ENVD_PORT), died]);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nconsole (last lines):\n${await consoleTail(vm.dir)}`);
  } finally {
    watching = false;
    died.catch(() => {}); // nobody waits for the watcher after this
  }
}

/**
 * A locally administered MAC derived from the capsule id (stable across pause/resume); `tag` is
 * the second byte, one per runtime, so the two VM runtimes never hand out the same address.
 */
export function macFor(id: string, tag: number): string {
  let h = 2166136261;
  for (const c of id) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const b = [0x02, tag & 255, (h >>> 24) & 255, (h >>> 16) & 255, (h >>> 8) & 255, h & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Calls onExit(reason) once when the VMM `pid` exits by itself (a crash, an OOM kill, a guest that
 * powered off), through a pidfd (pid-exit-watch.ts). `isOurs` tells whether `pid` still names this
 * capsule's VMM (pids are reused). Returns the function that stops watching.
 */
export function watchVmmExit(
  vm: { pid: number; dir: string },
  what: string,
  isOurs: (args: string[]) => boolean,
  onExit: (reason: string) => void,
): () => void {
  const pid = vm.pid;
  return watchPidExit(
    pid,
    () => isOurs(processArgsSync(pid)),
    () => {
      void consoleTail(vm.dir).then((tail) => onExit(`${what} (pid ${pid}) exited; console (last lines):\n${tail}`));
    },
  );
}

/**
 * A VM capsule's usage as the host sees it: one VMM process, whose CPU time is the guest's and
 * whose resident memory is the guest pages touched so far. Processes inside: ask envd.
 */
export async function vmmStats(
  pid: number | undefined,
  limits: { memoryMb: number; diskUsedBytes: number },
): Promise<CapsuleStats> {
  const out: CapsuleStats = {
    cpuUsageNs: 0n,
    memoryBytes: 0,
    memoryLimitBytes: limits.memoryMb * 1024 ** 2,
    pids: 0,
    diskUsedBytes: limits.diskUsedBytes,
  };
  if (!pid || !pidAlive(pid)) return out;
  const statLine = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0); // utime + stime
  out.cpuUsageNs = BigInt(ticks) * 10_000_000n; // USER_HZ = 100
  const statm = await readFile(`/proc/${pid}/statm`, 'utf8').catch(() => '0 0');
  out.memoryBytes = Number(statm.split(' ')[1] ?? 0) * 4096;
  return out;
}
