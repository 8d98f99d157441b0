// Capsules booted ahead of demand, per template: network made, runtime started, envd answering.
// A create that matches the pool's shape claims one (envd then only needs /init), so most of a
// capsule's start-up cost is paid before anyone asks. Pooled capsules carry an internal runtime id;
// the capsule id the user sees is given at claim time. A pooled capsule that dies is dropped
// (drop(), called by the manager's exit watch) and replaced, so it is never handed out.
// The sizes can change while the agent runs (resize(), the SetWarmPool call an admin makes through
// the control plane), and report() says what is ready per template: GetHostInfo carries it, so the
// control plane's scheduler sends a create to a host that has a ready capsule of its template.
// stop() (the agent's shutdown) refuses new pool work at once, aborts the boots under way (each
// gives back what it made so far) and destroys the ready capsules: a shutdown never waits for a
// refill to finish booting, nor does a resize sent while it stops start a new one.
import { UnavailableError } from '@wrenn/protocol';
import type { RuntimeHandle } from '../runtimes/runtime.js';
import type { CapsuleNetworkInfo } from './types.js';

const REFILL_DELAY_MS = 300;
/** The most ready capsules one template's pool may keep (what `--warm-pool` can say: 3 digits, and SetWarmPool). */
export const MAX_WARM_PER_TEMPLATE = 999;

export interface PooledCapsule {
  runtimeId: string;
  template: string;
  vcpus: number;
  memoryMb: number;
  handle: RuntimeHandle;
  network: CapsuleNetworkInfo;
  address: string;
}

/** One template's pool as GetHostInfo reports it. */
export interface WarmPoolStatus {
  template: string;
  ready: number;
  target: number;
  vcpus: number;
  memoryMb: number;
}

export interface WarmPoolOptions {
  /** Target number of ready capsules per template at start, e.g. { minimal: 2 }. */
  sizes: Record<string, number>;
  vcpus: number;
  memoryMb: number;
  /** Boots one; `signal` aborts it (the pool stops): it then releases what it made and rejects. */
  boot(template: string, signal: AbortSignal): Promise<PooledCapsule>;
  release(entry: PooledCapsule): Promise<void>;
  onError?(template: string, err: unknown): void;
}

export class WarmPool {
  private readonly ready = new Map<string, PooledCapsule[]>();
  private readonly booting = new Map<string, number>();
  /** Boots under way: stop() waits for them, so none finishes after the agent is gone. */
  private readonly inflight = new Set<Promise<unknown>>();
  private stopped = false;
  private readonly abort = new AbortController();
  private sizes: Record<string, number>;

  constructor(private readonly o: WarmPoolOptions) {
    this.sizes = { ...o.sizes };
  }

  /** Every template the pool keeps or still holds capsules of, by name. */
  report(): WarmPoolStatus[] {
    const names = new Set([
      ...Object.keys(this.sizes).filter((t) => (this.sizes[t] ?? 0) > 0),
      ...[...this.ready].filter(([, l]) => l.length > 0).map(([t]) => t),
    ]);
    return [...names].sort().map((template) => ({
      template,
      ready: this.readyCount(template),
      target: this.sizes[template] ?? 0,
      vcpus: this.o.vcpus,
      memoryMb: this.o.memoryMb,
    }));
  }

  /** The target per template now (templates with none left out). */
  targets(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.sizes).filter(([, n]) => n > 0));
  }

  /** true once stop() began: no boot starts any more. */
  get stopping(): boolean {
    return this.stopped;
  }

  /** Boots under way now (what a slow stop() waits for). */
  bootsInFlight(): number {
    return this.inflight.size;
  }

  /**
   * New targets (a template left out keeps none): ready capsules beyond a target are released now,
   * a boot still under way for one is released when it finishes (see fill), missing ones boot.
   * Refused once the pool stops (the agent is shutting down).
   */
  async resize(sizes: Record<string, number>): Promise<void> {
    if (this.stopped) throw new UnavailableError('the host agent is shutting down: warm pool sizes are not taken');
    this.sizes = { ...sizes };
    const extra: [string, PooledCapsule][] = [];
    for (const [template, list] of this.ready) {
      const over = list.length - (this.sizes[template] ?? 0);
      if (over > 0) for (const e of list.splice(list.length - over, over)) extra.push([template, e]);
    }
    this.fillAll();
    await Promise.all(
      extra.map(([template, e]) => this.o.release(e).catch((err: unknown) => this.o.onError?.(template, err))),
    );
  }

  /** Templates the pool keeps, holds or is booting capsules of (their templates stay in use). */
  templates(): string[] {
    return [...new Set([...Object.keys(this.sizes), ...this.ready.keys(), ...this.booting.keys()])];
  }

  /** Runtime ids of every pooled capsule (so start-up cleanup leaves none of them). */
  runtimeIds(): string[] {
    return [...this.ready.values()].flat().map((e) => e.runtimeId);
  }

  /** Capsules the pool holds: ready ones and those booting. */
  heldCount(): number {
    let n = 0;
    for (const list of this.ready.values()) n += list.length;
    for (const b of this.booting.values()) n += b;
    return n;
  }

  /** How many capsules of this template are ready to be claimed. */
  readyCount(template: string): number {
    return this.ready.get(template)?.length ?? 0;
  }

  /** A ready capsule of this template and shape, if the pool has one; the pool refills behind it. */
  take(template: string, vcpus: number, memoryMb: number): PooledCapsule | undefined {
    if (vcpus !== this.o.vcpus || memoryMb !== this.o.memoryMb) return undefined;
    const entry = this.ready.get(template)?.shift();
    // Refill a moment later: booting the replacement would otherwise compete with the claim.
    if (entry) setTimeout(() => this.fill(template), REFILL_DELAY_MS).unref();
    return entry;
  }

  /** Removes a ready capsule that died, releases it and boots a replacement; false if it is not (or no longer) in the pool. */
  drop(runtimeId: string): boolean {
    for (const [template, list] of this.ready) {
      const at = list.findIndex((e) => e.runtimeId === runtimeId);
      if (at < 0) continue;
      const [entry] = list.splice(at, 1);
      if (entry) void this.o.release(entry).catch((err: unknown) => this.o.onError?.(template, err));
      this.fill(template);
      return true;
    }
    return false;
  }

  fillAll(): void {
    for (const template of Object.keys(this.sizes)) this.fill(template);
  }

  private fill(template: string): void {
    if (this.stopped) return;
    const want = this.sizes[template] ?? 0;
    const have = (this.ready.get(template)?.length ?? 0) + (this.booting.get(template) ?? 0);
    for (let i = have; i < want; i++) {
      this.booting.set(template, (this.booting.get(template) ?? 0) + 1);
      const boot = this.o.boot(template, this.abort.signal).then(
        async (entry) => {
          this.booting.set(template, (this.booting.get(template) ?? 1) - 1);
          const list = this.ready.get(template) ?? [];
          // Stopped, or the target went down (resize) while it booted.
          if (this.stopped || list.length >= (this.sizes[template] ?? 0)) return this.o.release(entry);
          list.push(entry);
          this.ready.set(template, list);
        },
        (err: unknown) => {
          this.booting.set(template, (this.booting.get(template) ?? 1) - 1);
          if (!this.abort.signal.aborted) this.o.onError?.(template, err);
        },
      );
      this.inflight.add(boot);
      void boot.finally(() => this.inflight.delete(boot));
    }
  }

  /** Aborts the boots under way and destroys every pooled capsule. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    // An aborted boot releases what it made (see boot); one that finishes now releases its capsule
    // itself (see fill). Wait for that, so nothing is left running.
    await Promise.allSettled([...this.inflight]);
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    await Promise.all(all.map((e) => this.o.release(e).catch(() => undefined)));
  }
}

/**
 * `work`'s outcome, or a rejection as soon as `signal` aborts: a boot stops waiting (for envd, a
 * template build) when the pool stops. The work itself goes on; its outcome is then dropped.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new UnavailableError(`${what}: stopped, the host agent is shutting down`));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
