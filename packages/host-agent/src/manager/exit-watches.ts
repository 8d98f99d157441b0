// The capsules (and warm-pool capsules) whose exit the agent is watching, by key. Each watch is the
// runtime's own (a pidfd for namespace capsules), so there is no timer per capsule; a watch that
// was replaced or stopped never reports, so an exit caused by destroy or hibernate is not an error.
import type { CapsuleRuntime, RuntimeHandle } from '../runtimes/runtime.js';

export class ExitWatches {
  private readonly stops = new Map<string, () => void>();

  /** Watches `handle` under `key` (replacing any earlier watch of that key); false when the runtime cannot. */
  watch(
    key: string,
    runtime: CapsuleRuntime,
    handle: RuntimeHandle | undefined,
    onExit: (reason: string) => void,
  ): boolean {
    this.unwatch(key);
    if (!runtime.watchExit || !handle) return false;
    let current = true;
    const stop = runtime.watchExit(handle, (reason) => {
      if (!current || this.stops.get(key) !== entry) return;
      this.stops.delete(key);
      onExit(reason);
    });
    const entry = () => {
      current = false;
      stop();
    };
    this.stops.set(key, entry);
    return true;
  }

  unwatch(key: string): void {
    const stop = this.stops.get(key);
    this.stops.delete(key);
    stop?.();
  }

  unwatchAll(): void {
    for (const key of [...this.stops.keys()]) this.unwatch(key);
  }
}
