// envd's periodic checks (the port forwarder's socket-count gate, the idle memory check) run on one
// heartbeat, so envd wakes once per beat however many checks there are. The beat is `periodMs`
// (under 1 s) while envd is active: a request arrived, a check saw a change, or a process envd started is
// running, within the last `quietAfterMs`. Once quiet it slows down, doubling up to `maxPeriodMs`,
// because on a host of hundreds of idle capsules each wake of each envd costs the host CPU. With
// `sleepWhenQuiet` it stops altogether once quiet unless an `awakeWhile` predicate holds (envd's:
// "a process other than init and envd exists", since only a process can start a server): no timer
// is due, and envd is woken only by events (a request calls active()). Any activity brings the
// next beat back to within `periodMs` at once, so a server started by a command is still found
// within a second. The timer is unref'd: it never keeps envd alive.

export interface HeartbeatOptions {
  /** Beat while active (default 1000 ms). */
  periodMs?: number;
  /** Slowest beat once quiet (default 8000 ms; equal to periodMs: no slowing down). */
  maxPeriodMs?: number;
  /** Quiet after this long without activity (default 30 s). */
  quietAfterMs?: number;
  /**
   * Once quiet, no beat at all (until active()) unless an awakeWhile predicate holds; then the
   * beat slows down as without this. Default false: a quiet heartbeat slows down but beats on.
   */
  sleepWhenQuiet?: boolean;
}

/** A check gets the milliseconds since the previous beat. */
export type BeatCheck = (elapsedMs: number) => void;

export class Heartbeat {
  readonly periodMs: number;
  readonly maxPeriodMs: number;
  readonly quietAfterMs: number;
  readonly sleepWhenQuiet: boolean;
  private readonly checks = new Set<BeatCheck>();
  private readonly busy = new Set<() => boolean>();
  private readonly awake = new Set<() => boolean>();
  private sleeps = 0;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private period: number;
  private lastBeat = Date.now();
  private lastActive = Date.now();

  constructor(opts: HeartbeatOptions = {}) {
    this.periodMs = opts.periodMs ?? 1000;
    this.maxPeriodMs = opts.maxPeriodMs ?? 8000;
    this.quietAfterMs = opts.quietAfterMs ?? 30_000;
    this.sleepWhenQuiet = opts.sleepWhenQuiet ?? false;
    if (!(this.periodMs > 0))
      throw new Error(`heartbeat periodMs must be a positive number of milliseconds, got ${this.periodMs}`);
    if (!(this.maxPeriodMs >= this.periodMs))
      throw new Error(`heartbeat maxPeriodMs (${this.maxPeriodMs}) must be at least periodMs (${this.periodMs})`);
    if (!(this.quietAfterMs >= 0)) throw new Error(`heartbeat quietAfterMs must be >= 0, got ${this.quietAfterMs}`);
    this.period = this.periodMs;
  }

  /** Runs `check` at every beat; returns the function that removes it (the last one stops the timer). */
  on(check: BeatCheck): () => void {
    const entry: BeatCheck = (ms) => check(ms); // one entry per registration
    this.checks.add(entry);
    if (!this.timer) {
      this.lastBeat = Date.now();
      this.schedule(this.period);
    }
    return () => {
      this.checks.delete(entry);
      if (this.checks.size === 0 && this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Keeps the fast beat while `predicate()` is true (asked once per beat). */
  busyWhile(predicate: () => boolean): () => void {
    const entry = () => predicate();
    this.busy.add(entry);
    return () => {
      this.busy.delete(entry);
    };
  }

  /**
   * Once quiet, keeps beating (slowing down to maxPeriodMs) while `predicate()` is true instead of
   * sleeping; asked at a quiet beat only. Without sleepWhenQuiet it changes nothing.
   */
  awakeWhile(predicate: () => boolean): () => void {
    const entry = () => predicate();
    this.awake.add(entry);
    return () => {
      this.awake.delete(entry);
    };
  }

  /** Something happened: beat at `periodMs` again, the next beat at most `periodMs` from now. O(1). */
  active(): void {
    const now = Date.now();
    this.lastActive = now;
    this.period = this.periodMs;
    if (this.timer ? this.dueAt > now + this.periodMs : this.checks.size > 0) {
      if (!this.timer) this.lastBeat = now; // woken from sleep: the next beat covers from now
      this.schedule(this.periodMs);
    }
  }

  /** No activity (requests, changes, busy predicates) for quietAfterMs. */
  quiet(): boolean {
    return Date.now() - this.lastActive >= this.quietAfterMs;
  }

  /** Whether no beat is due (asleep, or no check registered). */
  sleeping(): boolean {
    return this.timer === undefined;
  }

  /** How many times it went to sleep (tests, logs). */
  sleepCount(): number {
    return this.sleeps;
  }

  /** The current beat period (tests, logs). */
  currentPeriodMs(): number {
    return this.period;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = Date.now() + ms;
    this.timer = setTimeout(() => this.beat(), ms);
    this.timer.unref();
  }

  /** An awake predicate holds; one that throws counts as true (better a beat too many than a missed server). */
  private anyAwake(): boolean {
    for (const predicate of this.awake) if (safely(predicate) !== false) return true;
    return false;
  }

  private beat(): void {
    this.timer = undefined;
    const now = Date.now();
    const elapsed = now - this.lastBeat;
    this.lastBeat = now;
    let busy = false;
    for (const predicate of this.busy) {
      if (safely(predicate) === true) {
        busy = true;
        this.lastActive = now;
        break;
      }
    }
    for (const check of this.checks) safely(() => check(elapsed));
    if (this.checks.size === 0) return;
    if (this.timer) return; // a check registered the first check anew and scheduled a beat
    const quiet = !busy && Date.now() - this.lastActive >= this.quietAfterMs;
    if (quiet && this.sleepWhenQuiet && !this.anyAwake()) {
      this.period = this.periodMs; // the first beat after a wake-up is a fast one
      this.sleeps++;
      return; // no timer: active() schedules the next beat
    }
    this.period = quiet ? Math.min(this.period * 2, this.maxPeriodMs) : this.periodMs;
    this.schedule(this.period);
  }
}

/** Runs one check; a throw is logged and does not stop the beat or the other checks. */
function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    try {
      process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'periodic check failed', error: String(err) })}\n`);
    } catch {
      // nowhere to report it
    }
    return undefined;
  }
}

/**
 * The heartbeat of this envd process: 750 ms while active, so a server a command starts is
 * forwarded within a second even when the beat fires late on a loaded host; quiet 10 s after the
 * last request, check that saw a change, or running process. Once quiet it sleeps (no timer due)
 * unless an awake predicate holds (in a capsule: another process exists, see other-processes.ts);
 * then it keeps the 750 ms beat, since such a process may start listening at any time.
 */
export const envdHeartbeat = new Heartbeat({
  periodMs: 750,
  maxPeriodMs: 750,
  quietAfterMs: 10_000,
  sleepWhenQuiet: true,
});
