// One client's view of a process's events: a queue the process pushes into and the RPC stream
// drains. Queued bytes are counted so a slow client can pause the process's output (backpressure)
// instead of growing envd's memory without bound.
import type { ProcessEvent } from '@wrenn/protocol/gen/envd/process_pb';

/** Queued output above which the process's output is paused until this client catches up. */
export const SUBSCRIBER_HIGH_WATER_BYTES = 4 * 1024 * 1024;

export class Subscription {
  private queue: ProcessEvent[] = [];
  private sizes: number[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  /** Bytes of output queued and not yet taken by the stream. */
  pendingBytes = 0;
  /** True after the last event (end) was pushed or the process went away. */
  finished = false;
  /** Called when the queue drops below the high-water mark again. */
  onDrain: (() => void) | undefined;

  push(event: ProcessEvent, bytes = 0): void {
    this.queue.push(event);
    this.sizes.push(bytes);
    this.pendingBytes += bytes;
    this.notify();
  }

  finish(): void {
    this.finished = true;
    this.notify();
  }

  get overHighWater(): boolean {
    return this.pendingBytes > SUBSCRIBER_HIGH_WATER_BYTES;
  }

  get idle(): boolean {
    return this.head === this.queue.length;
  }

  /** The next queued event, or undefined when the queue is empty. */
  take(): ProcessEvent | undefined {
    if (this.head === this.queue.length) return undefined;
    const event = this.queue[this.head] as ProcessEvent;
    const bytes = this.sizes[this.head] as number;
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.sizes.length = 0;
      this.head = 0;
    }
    if (bytes > 0) {
      const wasOver = this.overHighWater;
      this.pendingBytes -= bytes;
      if (wasOver && !this.overHighWater) this.onDrain?.();
    }
    return event;
  }

  /** Resolves when an event is queued, the subscription finished, or `interrupt` is called. */
  waitForEvent(): Promise<void> {
    if (!this.idle || this.finished) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Wakes a pending waitForEvent (the client went away, or a keepalive is due). */
  interrupt(): void {
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    if (wake) {
      this.wake = undefined;
      wake();
    }
  }
}
