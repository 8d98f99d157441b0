// The host's file table versus hostile capsules (issue 14 item 2), from measurements on this
// machine (Linux 6.18, cgroup v1): every open file's kernel memory (struct file and friends, about
// 220 bytes) is charged to the opener's memory cgroup, and in v1 that kernel memory counts against
// memory.limit_in_bytes: a 64 MiB group stopped at ~290,000 open files with a memcg OOM, while
// fs.file-nr climbed by exactly that much. So each capsule's share of the table is bounded by its
// memory limit, but the global count fs.file-max (here 2,466,255, about 10 % of RAM) is not: one
// capsule with a few GiB of memory could still reach it and give ENFILE to every other process.
// Hence, as systemd does at boot, fs.file-max is raised to the kernel's maximum so that memory (per
// capsule: its memory cgroup) is the only bound; RLIMIT_NOFILE per process stays finite
// (CAPSULE_NOFILE, enforced by wrenn-nsinit; root inside cannot raise a hard limit).
import { readFile, writeFile } from 'node:fs/promises';

const FILE_MAX = '/proc/sys/fs/file-max';
/** LONG_MAX: what systemd sets fs.file-max to. */
export const UNBOUNDED_FILE_MAX = 9223372036854775807n;
/**
 * RLIMIT_NOFILE (soft:hard) of a capsule's processes: systemd's default for services, lowered to
 * the agent's own hard limit where that is smaller (this host withholds CAP_SYS_RESOURCE from root).
 */
export const CAPSULE_NOFILE = '1024:524288';

/** Raises fs.file-max to LONG_MAX unless it is already there; returns the value before. */
export async function raiseFileMax(path = FILE_MAX): Promise<bigint> {
  const before = BigInt((await readFile(path, 'utf8')).trim());
  if (before < UNBOUNDED_FILE_MAX) {
    await writeFile(path, `${UNBOUNDED_FILE_MAX}\n`).catch((err: Error) => {
      throw new Error(`raising ${path} failed (the agent runs as root?): ${err.message}`);
    });
  }
  return before;
}
