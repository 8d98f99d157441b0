// What the kernel says about this host's shared tables right now, read from /proc: memory, tasks
// (pid_max, threads-max and the tasks that exist), the host's file table, and this agent's own open
// files against its RLIMIT_NOFILE. The capacity check (capacity.ts) is arithmetic over these.
import { readdirSync, readFileSync } from 'node:fs';

export interface HostReadings {
  memTotalMb: number;
  /** The kernel's estimate of memory available without swapping (MemAvailable). */
  memAvailableMb: number;
  /** Task ids the kernel hands out: the lower of kernel.pid_max and kernel.threads-max. */
  taskLimit: number;
  /** Tasks (threads) on the host now. */
  tasks: number;
  /** Open file handles on the host (fs.file-nr) and the host's limit (fs.file-max). */
  hostFiles: number;
  hostFileMax: number;
  /** This process's open fds (or a bound of them, see readHostReadings) and its soft RLIMIT_NOFILE. */
  agentFds: number;
  agentFdLimit: number;
}

const readText = (path: string) => readFileSync(path, 'utf8');

/** "MemAvailable:   23532820 kB" -> MiB. */
export function parseMeminfo(text: string): { memTotalMb: number; memAvailableMb: number } {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/meminfo has no ${key} line`);
    return Number(m[1]);
  };
  return { memTotalMb: Math.floor(kb('MemTotal') / 1024), memAvailableMb: Math.floor(kb('MemAvailable') / 1024) };
}

/** The fourth field of /proc/loadavg, "running/total": total tasks. */
export function parseLoadavgTasks(text: string): number {
  const m = /^\S+ \S+ \S+ \d+\/(\d+) /.exec(text);
  if (!m) throw new Error(`/proc/loadavg is not "l1 l5 l15 running/total last-pid": ${text.trim()}`);
  return Number(m[1]);
}

/** /proc/sys/fs/file-nr: "allocated unused max". */
export function parseFileNr(text: string): { hostFiles: number; hostFileMax: number } {
  const parts = text.trim().split(/\s+/).map(Number);
  if (parts.length !== 3 || parts.some((n) => !Number.isFinite(n)))
    throw new Error(`/proc/sys/fs/file-nr is not three numbers: ${text.trim()}`);
  // file-max may be 2^63-1, beyond a double's integers; anything that large is "no limit" here.
  return { hostFiles: parts[0]! - parts[1]!, hostFileMax: Math.min(parts[2]!, Number.MAX_SAFE_INTEGER) };
}

/** The soft "Max open files" of /proc/<pid>/limits (Infinity when unlimited). */
export function parseNofileSoft(limits: string): number {
  const m = /^Max open files\s+(\S+)\s+\S+/m.exec(limits);
  if (!m) throw new Error('/proc/self/limits has no "Max open files" line');
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** The "FDSize:" of /proc/<pid>/status: slots in the fd table, never fewer than the open fds. */
export function parseFdSize(status: string): number {
  const m = /^FDSize:\s+(\d+)/m.exec(status);
  if (!m) throw new Error('/proc/self/status has no FDSize line');
  return Number(m[1]);
}

/**
 * One reading of every table (synchronous: a few small /proc files). Counting the open fds means
 * listing /proc/self/fd, ~1 µs per fd (3.6 ms at 3,000): unless `exactFds`, the fd table's size
 * stands in for the count while it alone leaves `fdMargin` below the limit, and the fds are
 * counted only near the limit.
 */
export function readHostReadings(opts: { exactFds?: boolean; fdMargin?: number } = {}): HostReadings {
  const mem = parseMeminfo(readText('/proc/meminfo'));
  const pidMax = Number(readText('/proc/sys/kernel/pid_max').trim());
  const threadsMax = Number(readText('/proc/sys/kernel/threads-max').trim());
  const files = parseFileNr(readText('/proc/sys/fs/file-nr'));
  const agentFdLimit = parseNofileSoft(readText('/proc/self/limits'));
  const fdSize = opts.exactFds ? Infinity : parseFdSize(readText('/proc/self/status'));
  return {
    ...mem,
    taskLimit: Math.min(pidMax, threadsMax),
    tasks: parseLoadavgTasks(readText('/proc/loadavg')),
    ...files,
    agentFds: fdSize + (opts.fdMargin ?? 0) < agentFdLimit ? fdSize : readdirSync('/proc/self/fd').length,
    agentFdLimit,
  };
}
