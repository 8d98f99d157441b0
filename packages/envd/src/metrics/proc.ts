// Whole-machine counters from /proc: what a VM capsule (or a capsule without cgroup limits) reports.
import { readFileSync } from 'node:fs';

export interface MemInfo {
  total: number;
  free: number;
  buffers: number;
  /** Page cache including reclaimable slab, as `free` and E2B's envd count it. */
  cached: number;
}

/** /proc/meminfo in bytes. */
export function readMemInfo(path = '/proc/meminfo'): MemInfo {
  const kb = new Map<string, number>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m?.[1] && m[2]) kb.set(m[1], Number(m[2]) * 1024);
  }
  const total = kb.get('MemTotal');
  if (total === undefined) throw new Error(`${path} has no MemTotal line`);
  return {
    total,
    free: kb.get('MemFree') ?? 0,
    buffers: kb.get('Buffers') ?? 0,
    cached: (kb.get('Cached') ?? 0) + (kb.get('SReclaimable') ?? 0),
  };
}

export interface CpuTimes {
  busy: number;
  total: number;
}

/** The aggregate "cpu" line of /proc/stat, in clock ticks (guest time is already inside user). */
export function readCpuTimes(path = '/proc/stat'): CpuTimes {
  const line = readFileSync(path, 'utf8').split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== 'cpu') throw new Error(`${path} does not start with the aggregate cpu line`);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields
    .slice(1, 9)
    .map(Number);
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}
