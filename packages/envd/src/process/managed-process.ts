// A process envd started: fans its output out to every subscribed client, takes input and
// signals, and records how it ended. Pipe and PTY processes differ only in how bytes move.
import type { ProcessConfig, ProcessEvent_EndEvent } from '@wrenn/protocol/gen/envd/process_pb';
import { dataEvent, endEvent, endEventMessage, type OutputStream } from './events.js';
import type { Subscription } from './subscription.js';

export type SignalName = 'SIGTERM' | 'SIGKILL';

/** An operation the process cannot do in its mode (stdin on a PTY, resize without one...). */
export class ProcessStateError extends Error {}

export abstract class ManagedProcess {
  abstract readonly isPty: boolean;
  /** Set once the process exited and its output was drained; the end event was sent. */
  end: ProcessEvent_EndEvent | undefined;
  /** Called once, after the end event was pushed to every subscriber. */
  onFinished: ((proc: ManagedProcess) => void) | undefined;

  private readonly subscribers = new Set<Subscription>();
  private outputPaused = false;
  private deadline: NodeJS.Timeout | undefined;

  protected constructor(
    readonly pid: number,
    readonly config: ProcessConfig,
    readonly tag: string | undefined,
    firstSubscriber: Subscription,
  ) {
    this.subscribe(firstSubscriber);
  }

  subscribe(sub: Subscription): void {
    if (this.end) {
      sub.push(endEventMessage(this.end));
      sub.finish();
      return;
    }
    sub.onDrain = () => this.maybeResumeOutput();
    this.subscribers.add(sub);
  }

  unsubscribe(sub: Subscription): void {
    sub.onDrain = undefined;
    if (this.subscribers.delete(sub) && this.outputPaused) this.maybeResumeOutput();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Set when killAfter's deadline killed it: its Start stream then ends with deadline_exceeded. */
  killedAtDeadline = false;

  /** Kills the process group after `ms` (E2B: a Start's timeout bounds the process's life). */
  killAfter(ms: number): void {
    this.deadline = setTimeout(() => {
      this.killedAtDeadline = true;
      this.signal('SIGKILL');
    }, ms);
    this.deadline.unref();
  }

  /** Sends the signal to the whole process group, so children of a shell die with it. */
  signal(name: SignalName): void {
    try {
      process.kill(-this.pid, name);
    } catch {
      // The group is gone (or the process left it): fall back to the process itself.
      try {
        process.kill(this.pid, name);
      } catch {
        // Already exited; its end event is on its way.
      }
    }
  }

  abstract writeStdin(data: Uint8Array): Promise<void>;
  abstract closeStdin(): void;
  abstract writePty(data: Uint8Array): void;
  abstract resize(cols: number, rows: number): void;
  /** Kills the process group right away (envd shutting down). */
  kill(): void {
    this.signal('SIGKILL');
  }

  protected abstract pauseOutput(): void;
  protected abstract resumeOutput(): void;

  protected get outputIsPaused(): boolean {
    return this.outputPaused;
  }

  /** Output chunk from the process: one shared event for every subscriber; dropped when nobody listens. */
  protected emitOutput(stream: OutputStream, chunk: Uint8Array): void {
    if (this.subscribers.size === 0) return;
    const event = dataEvent(stream, chunk);
    let over = false;
    for (const sub of this.subscribers) {
      sub.push(event, chunk.byteLength);
      if (sub.overHighWater) over = true;
    }
    if (over && !this.outputPaused) {
      this.outputPaused = true;
      this.pauseOutput();
    }
  }

  /** The process ended (exit code or signal name, as Node reports them). Idempotent. */
  protected finish(code: number | null, signal: string | null): void {
    if (this.end) return;
    if (this.deadline) clearTimeout(this.deadline);
    this.end = endEvent(code, signal);
    const message = endEventMessage(this.end);
    for (const sub of this.subscribers) {
      sub.onDrain = undefined;
      sub.push(message);
      sub.finish();
    }
    this.subscribers.clear();
    this.onFinished?.(this);
  }

  private maybeResumeOutput(): void {
    if (!this.outputPaused) return;
    for (const sub of this.subscribers) if (sub.overHighWater) return;
    this.outputPaused = false;
    this.resumeOutput();
  }
}
