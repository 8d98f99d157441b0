// What the VM runtimes (QEMU, Firecracker) share about their VMM process: whether it lives, its
// arguments, waiting for it to go, the tail of the guest console, waiting for envd while watching
// the VMM, and the exit watch of a running VMM.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ENVD_PORT, waitForEnvd } from '../envd-client/index.js';
import { watchPidExit } from './pid-exit-watch.js';

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
