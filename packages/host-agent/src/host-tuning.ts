// Host kernel settings a host full of capsules needs (issue 15), applied once when the agent starts,
// before it creates any network namespace. Each one is a measured limit of this kind of host:
//
// - TCP/UDP hash tables per network namespace. By default every netns shares the host-wide TCP
//   established hash (262,144 buckets on a 24 GiB machine), and a read of /proc/net/tcp inside a
//   netns walks all of it to find its own few sockets: ~6 ms of CPU per read, so 200 capsules whose
//   envd scans its ports once a second kept 1.4 cores busy finding nothing. With
//   net.ipv4.tcp_child_ehash_entries set, each netns created afterwards gets a table of its own
//   (1,024 buckets: ~16 KiB) and the read costs well under a millisecond, whatever the host holds.
// - Neighbour (ARP) table: its thresholds count entries of every namespace together, and each
//   capsule adds two (its address on the host side, its gateway inside). Past gc_thresh3 (1,024
//   by default, i.e. ~500 capsules) the kernel logs "neighbour table overflow" and drops packets.
// - kernel.pid_max: 32,768 by default on a 2-core host; 1,000 idle capsules' envd (Node: about a
//   dozen threads each) take a third of it before anything runs. Raised as systemd does.
//
// Checked and left alone: loop devices (made on demand through /dev/loop-control: the host-scale
// bench had 1,000+ attached), inotify and key limits (counted per uid, and every capsule has a
// uid range of its own), kernel.threads-max (~190,000 on 24 GiB), user.max_*_namespaces (~96,000).
//
// Only ever raised, never lowered; a setting the kernel does not have is skipped with a log line.
import { readFile, writeFile } from 'node:fs/promises';

export interface TuningLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface HostSetting {
  /** sysctl name, e.g. net.ipv4.tcp_child_ehash_entries */
  key: string;
  /** The value wanted (the current one is kept when already at least this). */
  value: number;
}

/** Buckets of each new netns's own TCP established hash and UDP hash (0 = share the host's). */
export const DEFAULT_NETNS_HASH_ENTRIES = 1024;
/** Neighbour entries (all namespaces together) before the kernel refuses new ones: ~8,000 capsules. */
export const DEFAULT_NEIGH_MAX = 16384;
/** What systemd sets kernel.pid_max to on 64-bit hosts. */
export const PID_MAX = 4194304;

function envCount(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v) || Number(v) > max) throw new Error(`${name}="${v}" must be an integer from 0 to ${max}`);
  return Number(v);
}

/**
 * The settings for this host from the environment: WRENN_NETNS_HASH_ENTRIES (default 1024; 0 =
 * capsules share the host's tables), WRENN_NEIGH_MAX (default 16384), and WRENN_HOST_TUNING=0
 * to leave every one of them alone.
 */
export function hostSettings(env: NodeJS.ProcessEnv = process.env): HostSetting[] {
  if (env.WRENN_HOST_TUNING === '0') return [];
  const hash = envCount(env, 'WRENN_NETNS_HASH_ENTRIES', DEFAULT_NETNS_HASH_ENTRIES, 65536);
  const neigh = envCount(env, 'WRENN_NEIGH_MAX', DEFAULT_NEIGH_MAX, 1 << 24);
  return [
    ...(hash > 0
      ? [
          { key: 'net.ipv4.tcp_child_ehash_entries', value: hash },
          { key: 'net.ipv4.udp_child_hash_entries', value: Math.max(256, hash) },
        ]
      : []),
    // The garbage collector leaves the table alone below thresh1 and is forced above thresh2.
    ...(neigh > 0
      ? [
          { key: 'net.ipv4.neigh.default.gc_thresh1', value: Math.floor(neigh / 8) },
          { key: 'net.ipv4.neigh.default.gc_thresh2', value: Math.floor(neigh / 2) },
          { key: 'net.ipv4.neigh.default.gc_thresh3', value: neigh },
        ]
      : []),
    { key: 'kernel.pid_max', value: PID_MAX },
  ];
}

export function sysctlPath(key: string, procSys = '/proc/sys'): string {
  if (!/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/.test(key)) throw new Error(`"${key}" is not a sysctl name`);
  return `${procSys}/${key.replace(/\./g, '/')}`;
}

export interface AppliedSetting {
  key: string;
  before?: number;
  after?: number;
  /** Why nothing was written: 'absent' (this kernel has no such setting) or 'already' (high enough). */
  skipped?: 'absent' | 'already';
}

/**
 * Raises each setting to its value where it is lower. A missing sysctl (older kernel) is skipped;
 * a write the kernel refuses throws, naming the setting and the env var that turns it off.
 */
export async function applyHostSettings(
  settings: readonly HostSetting[],
  log?: TuningLog,
  procSys = '/proc/sys',
): Promise<AppliedSetting[]> {
  const out: AppliedSetting[] = [];
  for (const s of settings) {
    const path = sysctlPath(s.key, procSys);
    let before: number;
    try {
      before = Number((await readFile(path, 'utf8')).trim());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      log?.warn({ sysctl: s.key }, 'this kernel has no such setting: left as it is');
      out.push({ key: s.key, skipped: 'absent' });
      continue;
    }
    if (Number.isFinite(before) && before >= s.value) {
      out.push({ key: s.key, before, skipped: 'already' });
      continue;
    }
    await writeFile(path, `${s.value}\n`).catch((err: Error) => {
      throw new Error(
        `setting ${s.key}=${s.value} failed (${err.message}); WRENN_HOST_TUNING=0 leaves host settings alone`,
      );
    });
    const after = Number((await readFile(path, 'utf8')).trim());
    log?.info({ sysctl: s.key, before, after }, 'host setting raised for many capsules');
    out.push({ key: s.key, before, after });
  }
  return out;
}
