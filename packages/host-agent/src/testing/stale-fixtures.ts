// What a killed test run leaves behind, swept when the next one starts. A test process killed by a
// timeout (or by hand) runs no after(): its dnsmasq keeps the test resolver's address (the next run
// then fails "dnsmasq exited": address in use), and its live system's data dir under /tmp keeps
// the capsules' loop-mounted disks. Both are found by what identifies them as ours, never by a name
// alone: a dnsmasq by its command line (its own --listen-address), a data dir by the owner file the
// live fixture writes into it (pid and start time of the test process), swept only once that
// process is gone.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileNative } from '@wrenn/native';
import { removeTree } from '../rootfs/remove-tree.js';

/** The file in a test data dir that names the process owning it. */
export const OWNER_FILE = '.wrenn-test-owner';

const pids = (): number[] =>
  readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);

/** A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // a zombie is dead, only not yet reaped
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** The argv of a process, or undefined when it is gone (or a kernel thread). */
function cmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.replace(/\0$/, '').split('\0') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Kills every dnsmasq whose command line binds it to `listenAddress` (a test resolver's own
 * address: one still there is a killed run's), and waits until each is gone. Returns their pids.
 */
export async function killStaleDnsmasq(listenAddress: string): Promise<number[]> {
  const flag = `--listen-address=${listenAddress}`;
  const found = pids().filter((pid) => {
    const argv = cmdline(pid);
    return argv !== undefined && basename(argv[0] ?? '') === 'dnsmasq' && argv.includes(flag);
  });
  for (const pid of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  for (let i = 0; i < 100 && found.some((pid) => processStartTime(pid) !== undefined); i++) await sleep(20);
  const left = found.filter((pid) => processStartTime(pid) !== undefined);
  if (left.length > 0) throw new Error(`a stale dnsmasq on ${listenAddress} did not die: pid ${left.join(', ')}`);
  return found;
}

/** Marks `dir` as this process's (see sweepStaleTestDirs). */
export function markTestDir(dir: string): void {
  writeFileSync(join(dir, OWNER_FILE), `${process.pid} ${processStartTime(process.pid) ?? 0}\n`);
}

/** Whether the process that marked `dir` is gone; undefined when `dir` has no (readable) mark. */
export function ownerGone(dir: string): boolean | undefined {
  let mark: string;
  try {
    mark = readFileSync(join(dir, OWNER_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const [pid, start] = mark.trim().split(' ').map(Number);
  if (!Number.isInteger(pid) || !Number.isInteger(start) || (pid ?? 0) <= 0) return undefined;
  // A reused pid has another start time.
  return processStartTime(pid as number) !== start;
}

/** Loop devices whose backing file lies under `dir` (an attach whose mount never came, or that a namespace still holds). */
function loopDevicesUnder(dir: string): string[] {
  const base = `${resolve(dir)}/`;
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  return names.filter((n) => {
    try {
      return readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim().startsWith(base);
    } catch {
      return false;
    }
  });
}

/**
 * Removes every marked test data dir in `parent` (default the temp dir) whose owner process is gone:
 * unmounts what is mounted below it (the capsules' disks), detaches loop devices still backed by its
 * files, then deletes it. Dirs without a mark, or whose owner lives, are left alone. Returns the
 * dirs removed; what could not be removed is reported together.
 */
export async function sweepStaleTestDirs(parent = tmpdir(), prefix = 'wrenn-'): Promise<string[]> {
  const removed: string[] = [];
  const errors: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(parent).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
  for (const name of entries) {
    const dir = join(parent, name);
    if (ownerGone(dir) !== true) continue;
    try {
      // Unmounting a capsule disk frees its loop device (attached with autoclear).
      await removeTree(dir);
      for (const dev of loopDevicesUnder(dir))
        await execFileNative('losetup', ['--detach', `/dev/${dev}`]).catch(() => undefined);
      removed.push(dir);
    } catch (err) {
      errors.push(`${dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (errors.length > 0) throw new Error(`stale test dirs could not all be removed:\n${errors.join('\n')}`);
  return removed;
}
