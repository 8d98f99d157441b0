// The capsule's own cgroup: where its memory and CPU counters live, read without subprocesses.
// Inside a namespace capsule envd sees either its cgroup as the root of each hierarchy (cgroup
// namespace) or the host's tree with its own path in /proc/self/cgroup; both are handled.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupMemory {
  /** Limit in bytes, or undefined when the cgroup has none. */
  limit: number | undefined;
  usage: number;
  /** Page cache charged to the cgroup. */
  cache: number;
}

export interface CgroupCpu {
  /** CPU time used by the cgroup so far, in nanoseconds. */
  usageNs: number;
  /** Cores the quota allows (fractional), or undefined without a quota. */
  quotaCores: number | undefined;
}

export interface CgroupReader {
  memory(): CgroupMemory | undefined;
  cpu(): CgroupCpu | undefined;
}

// cgroup v1 writes ~2^63 rounded to the page size for "no limit".
const NO_LIMIT = 2 ** 62;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const text = readText(path)?.trim();
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" lines (memory.stat, cpu.stat) to a map. */
export function parseKeyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value !== undefined) out.set(key, Number(value));
  }
  return out;
}

/** Our path per controller from /proc/self/cgroup ("id:controllers:path"); key '' is cgroup v2. */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, controllers = '', path = '/'] = m;
    if (controllers === '') out.set('', path);
    for (const c of controllers.split(',')) if (c) out.set(c, path);
  }
  return out;
}

/** The first directory that holds `file`: our own cgroup under the mount, then the mount itself. */
function findDir(mounts: string[], ownPath: string | undefined, file: string): string | undefined {
  for (const mount of mounts) {
    const candidates = ownPath && ownPath !== '/' ? [join(mount, ownPath), mount] : [mount];
    for (const dir of candidates) if (existsSync(join(dir, file))) return dir;
  }
  return undefined;
}

export function openCgroupReader(root = '/sys/fs/cgroup', procSelfCgroup = '/proc/self/cgroup'): CgroupReader {
  const own = parseProcCgroup(readText(procSelfCgroup) ?? '');
  const v2 = existsSync(join(root, 'cgroup.controllers'));
  if (v2)
    return cgroupV2Reader(findDir([root], own.get(''), 'memory.current'), findDir([root], own.get(''), 'cpu.stat'));
  const memDir = findDir([join(root, 'memory')], own.get('memory'), 'memory.usage_in_bytes');
  const acctDir = findDir([join(root, 'cpuacct'), join(root, 'cpu,cpuacct')], own.get('cpuacct'), 'cpuacct.usage');
  const cpuDir = findDir([join(root, 'cpu'), join(root, 'cpu,cpuacct')], own.get('cpu'), 'cpu.cfs_quota_us');
  return cgroupV1Reader(memDir, acctDir, cpuDir);
}

function cgroupV1Reader(memDir?: string, acctDir?: string, cpuDir?: string): CgroupReader {
  return {
    memory() {
      if (!memDir) return undefined;
      const usage = readNumber(join(memDir, 'memory.usage_in_bytes'));
      if (usage === undefined) return undefined;
      const limit = readNumber(join(memDir, 'memory.limit_in_bytes'));
      const stat = parseKeyValues(readText(join(memDir, 'memory.stat')) ?? '');
      return {
        usage,
        limit: limit !== undefined && limit < NO_LIMIT ? limit : undefined,
        cache: stat.get('total_cache') ?? stat.get('cache') ?? 0,
      };
    },
    cpu() {
      if (!acctDir) return undefined;
      const usageNs = readNumber(join(acctDir, 'cpuacct.usage'));
      if (usageNs === undefined) return undefined;
      let quotaCores: number | undefined;
      if (cpuDir) {
        const quota = readNumber(join(cpuDir, 'cpu.cfs_quota_us'));
        const period = readNumber(join(cpuDir, 'cpu.cfs_period_us'));
        if (quota !== undefined && period && quota > 0) quotaCores = quota / period;
      }
      return { usageNs, quotaCores };
    },
  };
}

function cgroupV2Reader(memDir?: string, cpuDir?: string): CgroupReader {
  return {
    memory() {
      if (!memDir) return undefined;
      const usage = readNumber(join(memDir, 'memory.current'));
      if (usage === undefined) return undefined;
      const max = readText(join(memDir, 'memory.max'))?.trim();
      const stat = parseKeyValues(readText(join(memDir, 'memory.stat')) ?? '');
      const limit = max && max !== 'max' ? Number(max) : undefined;
      return {
        usage,
        limit: limit !== undefined && Number.isFinite(limit) ? limit : undefined,
        cache: stat.get('file') ?? 0,
      };
    },
    cpu() {
      if (!cpuDir) return undefined;
      const usageUs = parseKeyValues(readText(join(cpuDir, 'cpu.stat')) ?? '').get('usage_usec');
      if (usageUs === undefined) return undefined;
      const [quota, period] = (readText(join(cpuDir, 'cpu.max')) ?? 'max').trim().split(' ');
      const quotaCores = quota && quota !== 'max' && period ? Number(quota) / Number(period) : undefined;
      return { usageNs: usageUs * 1000, quotaCores };
    },
  };
}
