// Capsules booted ahead of demand, per template: network made, runtime started, envd answering.
// A create that matches the pool's shape claims one (envd then only needs /init), so most of a
// capsule's start-up cost is paid before anyone asks. Pooled capsules carry an internal runtime id;
// the capsule id the user sees is given at claim time. A pooled capsule that dies is dropped
// (drop(), called by the manager's exit watch) and replaced, so it is never handed out.
import type { RuntimeHandle } from '../runtimes/runtime.js';
import type { CapsuleNetworkInfo } from './types.js';

const REFILL_DELAY_MS = 300;

export interface PooledCapsule {
  runtimeId: string;
  template: string;
  vcpus: number;
  memoryMb: number;
  handle: RuntimeHandle;
  network: CapsuleNetworkInfo;
  address: string;
}

export interface WarmPoolOptions {
  /** Target number of ready capsules per template, e.g. { minimal: 2 }. */
  sizes: Record<string, number>;
  vcpus: number;
  memoryMb: number;
  boot(template: string): Promise<PooledCapsule>;
  release(entry: PooledCapsule): Promise<void>;
  onError?(template: string, err: unknown): void;
}

export class WarmPool {
  private readonly ready = new Map<string, PooledCapsule[]>();
  private readonly booting = new Map<string, number>();
  /** Boots under way: stop() waits for them, so none finishes after the agent is gone. */
  private readonly inflight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly o: WarmPoolOptions) {}

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
    for (const template of Object.keys(this.o.sizes)) this.fill(template);
  }

  private fill(template: string): void {
    if (this.stopped) return;
    const want = this.o.sizes[template] ?? 0;
    const have = (this.ready.get(template)?.length ?? 0) + (this.booting.get(template) ?? 0);
    for (let i = have; i < want; i++) {
      this.booting.set(template, (this.booting.get(template) ?? 0) + 1);
      const boot = this.o.boot(template).then(
        async (entry) => {
          this.booting.set(template, (this.booting.get(template) ?? 1) - 1);
          if (this.stopped) return this.o.release(entry);
          const list = this.ready.get(template) ?? [];
          list.push(entry);
          this.ready.set(template, list);
        },
        (err: unknown) => {
          this.booting.set(template, (this.booting.get(template) ?? 1) - 1);
          this.o.onError?.(template, err);
        },
      );
      this.inflight.add(boot);
      void boot.finally(() => this.inflight.delete(boot));
    }
  }

  /** Destroys every pooled capsule. */
  async stop(): Promise<void> {
    this.stopped = true;
    // A boot that finishes now releases its capsule itself (see fill); wait for that.
    await Promise.allSettled([...this.inflight]);
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    await Promise.all(all.map((e) => this.o.release(e).catch(() => undefined)));
  }
}
