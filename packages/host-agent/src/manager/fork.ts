// Fork: one copy of a running capsule, N new capsules started from it, the source running on.
// The copy is a hidden snapshot template named fork-<agent tag>-<random>: on the namespace runtime
// the source's writable layer, copied while its cgroup is frozen (so no write lands half-way),
// under which every fork gets its own empty copy-on-write upper layer and boots fresh processes;
// on the VM runtimes its disk and a memory snapshot (the VM is stopped for it and continues), which
// every fork restores, processes included. The template lives while a capsule, or another fork
// template stacked on it, still uses it; `sweep` deletes it after that (and at agent start).
import { createHash, randomBytes } from 'node:crypto';
import { DomainError, FailedPreconditionError, forkRestartsProcesses } from '@wrenn/protocol';
import type { CreateCapsuleInput } from './manager.js';
import type { CapsuleRecord, TemplateInfo, TimeoutAction } from './types.js';

/** One fork to start; the rest (shape, environment, metadata, network, user) is the source's. */
export interface ForkTarget {
  id: string;
  timeoutSec: number;
  timeoutAction: TimeoutAction;
  envdAccessToken: string;
}

/** A started fork, or why it did not start. */
export type ForkOutcome = { capsule: CapsuleRecord } | { error: unknown };

export interface ForkResult {
  forks: ForkOutcome[];
  /** The forks started fresh processes (a copy of the files only). */
  processesRestarted: boolean;
}

/** What forking needs from the sandbox manager. */
export interface ForkHost {
  get(id: string): CapsuleRecord;
  list(): CapsuleRecord[];
  snapshot(id: string, name: string): Promise<TemplateInfo>;
  create(input: CreateCapsuleInput): Promise<CapsuleRecord>;
  templates(): { list(): Promise<TemplateInfo[]>; delete(name: string): Promise<void> };
}

type Log = (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;

/** Forks started at once: each is a full boot (a VM restore under emulation takes a core for seconds). */
const PARALLEL_BOOTS = 4;

export class CapsuleForks {
  /** This agent's fork templates (agents sharing one images directory keep apart by the tag). */
  readonly prefix: string;
  /** Fork templates whose forks are still being started: never swept. */
  private readonly starting = new Set<string>();
  private sweeping: Promise<void> | undefined;
  private sweepAgain = false;

  constructor(
    private readonly host: ForkHost,
    dataDir: string,
    private readonly log: Log = () => undefined,
  ) {
    this.prefix = `fork-${createHash('sha256').update(dataDir).digest('hex').slice(0, 8)}-`;
  }

  isForkTemplate(name: string): boolean {
    return name.startsWith(this.prefix);
  }

  async fork(sourceId: string, targets: readonly ForkTarget[]): Promise<ForkResult> {
    const source = this.host.get(sourceId);
    if (source.state !== 'running')
      throw new FailedPreconditionError(`capsule ${sourceId} is ${source.state}; only a running capsule can be forked`);
    const name = `${this.prefix}${randomBytes(6).toString('hex')}`;
    this.starting.add(name);
    try {
      const t0 = Date.now();
      await this.host.snapshot(sourceId, name);
      const copiedMs = Date.now() - t0;
      const restarts = forkRestartsProcesses(source.runtime);
      const forks = await mapLimited(targets, PARALLEL_BOOTS, async (t): Promise<ForkOutcome> => {
        try {
          return { capsule: await this.host.create(forkInput(source, name, t, restarts)) };
        } catch (error) {
          return { error };
        }
      });
      const started = forks.filter((f) => 'capsule' in f).length;
      this.log('info', 'capsule forked', {
        id: sourceId,
        template: name,
        forks: targets.length,
        started,
        copyMs: copiedMs,
        ms: Date.now() - t0,
      });
      return { forks, processesRestarted: restarts };
    } finally {
      this.starting.delete(name);
      this.sweepSoon();
    }
  }

  /** Starts a sweep now (or once more after the running one); never throws. */
  sweepSoon(): void {
    void this.sweep().catch((err: unknown) => this.log('warn', 'fork template sweep failed', { err: String(err) }));
  }

  /**
   * Deletes this agent's fork templates no capsule starts from (the store refuses one that another
   * template is stacked on; that one goes in a later round, when its last user does).
   */
  async sweep(): Promise<void> {
    if (this.sweeping) {
      this.sweepAgain = true;
      return this.sweeping;
    }
    this.sweeping = (async () => {
      do {
        this.sweepAgain = false;
        await this.sweepOnce();
      } while (this.sweepAgain);
    })().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    for (let progress = true; progress; ) {
      progress = false;
      const used = new Set(this.host.list().map((r) => r.template));
      for (const t of await this.host.templates().list()) {
        if (!this.isForkTemplate(t.name) || used.has(t.name) || this.starting.has(t.name)) continue;
        try {
          await this.host.templates().delete(t.name);
          progress = true;
          this.log('info', 'fork template deleted: no capsule uses it', { template: t.name });
        } catch (err) {
          // Still under another fork template (a fork of a fork): kept until that one goes.
          if (!(err instanceof DomainError && err.kind === 'failed_precondition')) throw err;
        }
      }
    }
  }
}

/** The create request of one fork: the source's settings, the fork template, the target's own id, token and timeout. */
function forkInput(source: CapsuleRecord, template: string, t: ForkTarget, restarts: boolean): CreateCapsuleInput {
  return {
    id: t.id,
    template,
    runtime: source.runtime,
    vcpus: source.vcpus,
    memoryMb: source.memoryMb,
    timeoutSec: t.timeoutSec,
    timeoutAction: t.timeoutAction,
    envs: source.envs,
    metadata: source.metadata,
    internet: source.internet,
    ...(source.networkPolicy ? { network: source.networkPolicy } : {}),
    envdAccessToken: t.envdAccessToken,
    ...(source.defaultUser ? { defaultUser: source.defaultUser } : {}),
    ...(source.defaultWorkdir ? { defaultWorkdir: source.defaultWorkdir } : {}),
    // The source's volumes, shared with it (the same mounted file systems), not copied.
    ...(source.volumes?.length ? { volumes: source.volumes } : {}),
    // A restored VM's envd still holds the source's token: /init must present it to set the fork's.
    ...(restarts ? {} : { inheritedEnvdToken: source.envdAccessToken }),
  };
}

/** fn over items, at most `limit` at a time, results in the items' order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
