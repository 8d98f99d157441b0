// cgroup v1 groups of one capsule: /sys/fs/cgroup/<controller>/wrenn/<id> for cpu, cpuacct,
// memory, pids and freezer. Files are written directly (synchronously: each write is a few
// microseconds, far cheaper than any subprocess or promise round trip).
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'freezer'] as const;
export type Controller = (typeof CONTROLLERS)[number];
/** Default parent group of all capsules: /sys/fs/cgroup/<controller>/wrenn/<id>. */
export const DEFAULT_CGROUP_PARENT = 'wrenn';
const CFS_PERIOD_US = 100_000;

export interface CgroupLimits {
  vcpus: number;
  memoryMb: number;
  pidsMax: number;
}

export class CapsuleCgroups {
  /** Directory of this capsule's group in each controller. */
  readonly dirs: Record<Controller, string>;

  constructor(
    readonly id: string,
    readonly root = '/sys/fs/cgroup',
    readonly parent = DEFAULT_CGROUP_PARENT,
  ) {
    this.dirs = Object.fromEntries(CONTROLLERS.map((c) => [c, join(root, c, parent, id)])) as Record<
      Controller,
      string
    >;
  }

  /** The distinct directories (cpu and cpuacct may be one co-mounted hierarchy). */
  uniqueDirs(): string[] {
    const seen = new Map<string, string>();
    for (const c of CONTROLLERS) {
      const hierarchy = realpathOr(join(this.root, c));
      if (!seen.has(hierarchy)) seen.set(hierarchy, this.dirs[c]);
    }
    return [...seen.values()];
  }

  create(limits: CgroupLimits): void {
    checkV1(this.root);
    for (const d of this.uniqueDirs()) mkdirSync(d, { recursive: true });
    const quota = Math.max(1_000, Math.round(limits.vcpus * CFS_PERIOD_US));
    this.write('cpu', 'cpu.cfs_period_us', String(CFS_PERIOD_US));
    this.write('cpu', 'cpu.cfs_quota_us', String(quota));
    const bytes = String(Math.round(limits.memoryMb * 1024 * 1024));
    // memsw >= memory is required by the kernel: raise/lower the pair in the order it accepts.
    const memsw = join(this.dirs.memory, 'memory.memsw.limit_in_bytes');
    const hasMemsw = existsSync(memsw);
    try {
      this.write('memory', 'memory.limit_in_bytes', bytes);
      if (hasMemsw) this.write('memory', 'memory.memsw.limit_in_bytes', bytes);
    } catch {
      if (hasMemsw) this.write('memory', 'memory.memsw.limit_in_bytes', bytes);
      this.write('memory', 'memory.limit_in_bytes', bytes);
    }
    this.write('pids', 'pids.max', String(limits.pidsMax));
    this.write('freezer', 'freezer.state', 'THAWED');
  }

  exists(): boolean {
    return existsSync(this.dirs.freezer);
  }

  write(c: Controller, file: string, value: string): void {
    try {
      writeFileSync(join(this.dirs[c], file), value);
    } catch (err) {
      throw new Error(`cgroup write ${value} > ${join(this.dirs[c], file)} failed: ${(err as Error).message}`);
    }
  }

  read(c: Controller, file: string): string {
    return readFileSync(join(this.dirs[c], file), 'utf8').trim();
  }

  freezerState(): string {
    return this.read('freezer', 'freezer.state');
  }

  /** Freezes every process of the capsule and returns once the kernel says FROZEN. */
  async freeze(timeoutMs = 10_000): Promise<void> {
    this.write('freezer', 'freezer.state', 'FROZEN');
    const deadline = Date.now() + timeoutMs;
    let spins = 0;
    while (this.freezerState() !== 'FROZEN') {
      if (Date.now() > deadline) {
        this.write('freezer', 'freezer.state', 'THAWED');
        throw new Error(
          `capsule ${this.id} did not freeze within ${timeoutMs} ms (a task in uninterruptible sleep?); thawed it again`,
        );
      }
      // Most freezes finish in microseconds: re-check at once a few times before sleeping.
      if (++spins > 20) await sleep(1);
      else await new Promise<void>((r) => setImmediate(r));
    }
  }

  thaw(): void {
    this.write('freezer', 'freezer.state', 'THAWED');
  }

  pids(): number[] {
    const out = new Set<number>();
    for (const d of this.uniqueDirs()) {
      try {
        for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.add(Number(l));
      } catch {
        // group already gone
      }
    }
    return [...out];
  }

  /**
   * Kills every process: freeze first so nothing can fork while we kill (a fork bomb cannot
   * outrun it), SIGKILL all, thaw so the kills are delivered, then wait until the group is empty.
   */
  async killAll(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pids().length > 0) {
      const frozen = existsSync(this.dirs.freezer);
      if (frozen) await this.freeze().catch(() => undefined);
      for (const pid of this.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
      if (frozen && existsSync(this.dirs.freezer)) this.thaw();
      for (let i = 0; i < 50 && this.pids().length > 0; i++) await sleep(i < 10 ? 1 : 10);
      if (Date.now() > deadline) {
        throw new Error(
          `processes ${this.pids().join(' ')} of capsule ${this.id} survived SIGKILL for ${timeoutMs} ms`,
        );
      }
    }
  }

  /** Removes the (empty) groups; the kernel may need a moment after the last exit. */
  async remove(): Promise<void> {
    for (const d of this.uniqueDirs()) {
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(d);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || attempt > 100)
            throw new Error(`could not remove cgroup ${d}: ${(err as Error).message}`);
          await sleep(10);
        }
      }
    }
  }

  stats(): { cpuUsageNs: bigint; memoryBytes: number; memoryLimitBytes: number; pids: number } {
    return {
      cpuUsageNs: BigInt(this.read('cpuacct', 'cpuacct.usage')),
      memoryBytes: Number(this.read('memory', 'memory.usage_in_bytes')),
      memoryLimitBytes: Number(this.read('memory', 'memory.limit_in_bytes')),
      pids: Number(this.read('pids', 'pids.current')),
    };
  }

  /** Number of processes the memory cgroup's OOM killer has killed (kernel >= 4.13). */
  oomKills(): number {
    const m = /oom_kill (\d+)/.exec(this.read('memory', 'memory.oom_control'));
    return m?.[1] ? Number(m[1]) : 0;
  }
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function checkV1(root: string): void {
  for (const c of CONTROLLERS) {
    if (!existsSync(join(root, c, 'cgroup.procs'))) {
      throw new Error(
        `cgroup v1 controller "${c}" is not mounted at ${join(root, c)}: the namespace runtime needs cgroup v1 cpu, cpuacct, memory, pids and freezer`,
      );
    }
  }
}

/** Removes the parent under every controller where it is empty (one still holding capsules stays). */
export function removeCgroupParentIfEmpty(root = '/sys/fs/cgroup', parent = DEFAULT_CGROUP_PARENT): void {
  for (const c of CONTROLLERS) {
    try {
      rmdirSync(join(root, c, parent));
    } catch {
      // not made under this controller, already gone, or capsules still in it
    }
  }
}

/** Capsule ids that have a group under any controller's wrenn/ parent. */
export function listCapsuleCgroupIds(root = '/sys/fs/cgroup', parent = DEFAULT_CGROUP_PARENT): string[] {
  const ids = new Set<string>();
  for (const c of CONTROLLERS) {
    try {
      for (const e of readdirSync(join(root, c, parent), { withFileTypes: true })) if (e.isDirectory()) ids.add(e.name);
    } catch {
      // no wrenn parent in this controller
    }
  }
  return [...ids];
}
