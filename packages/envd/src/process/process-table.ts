// The processes envd is running, by pid, plus the end events of recently finished ones so a
// client that reconnects just after the exit still learns the exit code (as E2B's envd does).
import { Code, ConnectError } from '@connectrpc/connect';
import type { ProcessEvent_EndEvent, ProcessSelector } from '@wrenn/protocol/gen/envd/process_pb';
import type { ManagedProcess } from './managed-process.js';

/** How long a finished process's end event stays available to Connect. */
export const RETAIN_END_MS = 30_000;

export interface FinishedProcess {
  pid: number;
  tag: string | undefined;
  end: ProcessEvent_EndEvent;
  expiresAt: number;
}

export class ProcessTable {
  private readonly live = new Map<number, ManagedProcess>();
  // Insertion order is finish order, so expired entries are always at the front.
  private readonly finished = new Map<number, FinishedProcess>();

  add(proc: ManagedProcess): void {
    this.live.set(proc.pid, proc);
    // A reused pid or tag must never answer with a predecessor's exit.
    this.finished.delete(proc.pid);
    if (proc.tag !== undefined) {
      for (const [pid, f] of this.finished) if (f.tag === proc.tag) this.finished.delete(pid);
    }
    proc.onFinished = (p) => this.retire(p);
    if (proc.end) this.retire(proc); // ended before it was registered
  }

  all(): IterableIterator<ManagedProcess> {
    return this.live.values();
  }

  /** The running process a selector names; throws invalid_argument / not_found. */
  get(selector: ProcessSelector | undefined): ManagedProcess {
    const found = this.lookup(selector);
    if (found) return found;
    throw notFound(selector);
  }

  /** The running process a selector names, else undefined (selector must be valid). */
  lookup(selector: ProcessSelector | undefined): ManagedProcess | undefined {
    const s = selector?.selector;
    switch (s?.case) {
      case 'pid':
        return this.live.get(s.value);
      case 'tag':
        for (const proc of this.live.values()) if (proc.tag === s.value) return proc;
        return undefined;
      default:
        throw new ConnectError(
          'process selector is missing: give the pid or the tag of the process',
          Code.InvalidArgument,
        );
    }
  }

  /** A recently finished process the selector names. */
  lookupFinished(selector: ProcessSelector | undefined): FinishedProcess | undefined {
    this.prune(Date.now());
    const s = selector?.selector;
    if (s?.case === 'pid') return this.finished.get(s.value);
    if (s?.case === 'tag') {
      let last: FinishedProcess | undefined;
      for (const f of this.finished.values()) if (f.tag === s.value) last = f;
      return last;
    }
    return undefined;
  }

  private retire(proc: ManagedProcess): void {
    if (this.live.get(proc.pid) === proc) this.live.delete(proc.pid);
    if (!proc.end) return;
    const now = Date.now();
    this.prune(now);
    this.finished.set(proc.pid, { pid: proc.pid, tag: proc.tag, end: proc.end, expiresAt: now + RETAIN_END_MS });
  }

  private prune(now: number): void {
    for (const [pid, f] of this.finished) {
      if (f.expiresAt > now) break;
      this.finished.delete(pid);
    }
  }
}

export function notFound(selector: ProcessSelector | undefined): ConnectError {
  const s = selector?.selector;
  const what = s?.case === 'tag' ? `with tag "${s.value}"` : `with pid ${String(s?.value)}`;
  return new ConnectError(
    `process ${what} not found: it is not running (list running processes with List)`,
    Code.NotFound,
  );
}
