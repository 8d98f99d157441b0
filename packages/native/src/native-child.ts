// A child started by the addon's spawnProcess, as the parts of Node's ChildProcess its users need:
// pid, its pipes as sockets, kill(), 'exit' when the reaper reports it and 'close' once its pipes
// closed too (ChildProcess's order); and NativeSpawner, a process's lazily loaded binding, its
// reaper and the table that routes the reaper's reports. Plain JS (no addon: the caller loads it),
// shared by the host's spawnNative (exec-native.ts) and envd's pipe processes (its bundle takes
// this module in), so these rules are written once.
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import type { NativeBinding } from './binding.js';
import { signalName } from './spawn-results.js';

export class NativeChild extends EventEmitter {
  /** The parent's end of each piped fd (index = the child's fd), null where there is none. */
  readonly stdio: (Socket | null)[];
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  private openStreams = 0;
  private hasExited = false;

  /**
   * `fds[i]`: our end of the child's fd i (< 0: none; fd 0 is written, the others read). `pid`
   * undefined: a start that failed (the caller emits its 'error'). `setRef` keeps the event loop
   * alive for the running child, or not (the reaper's ref), for ref()/unref().
   */
  constructor(
    readonly pid: number | undefined,
    fds: readonly number[],
    private readonly setRef?: (pid: number, on: boolean) => void,
  ) {
    super();
    this.stdio = fds.map((fd, i) => (fd < 0 ? null : new Socket({ fd, readable: i !== 0, writable: i === 0 })));
    for (const s of this.stdio) {
      if (!s) continue;
      this.openStreams++;
      s.once('close', () => this.streamClosed());
    }
  }

  get stdin(): Socket | null {
    return this.stdio[0] ?? null;
  }
  get stdout(): Socket | null {
    return this.stdio[1] ?? null;
  }
  get stderr(): Socket | null {
    return this.stdio[2] ?? null;
  }

  /** Signals the process itself (not its group); false once it exited, like ChildProcess.kill. */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.hasExited || this.pid === undefined) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch (err) {
      this.emit('error', err);
      return false;
    }
  }

  /** The running child no longer keeps the event loop alive (its pipes still do until closed). */
  unref(): void {
    if (this.pid !== undefined && !this.hasExited) this.setRef?.(this.pid, false);
  }

  ref(): void {
    if (this.pid !== undefined && !this.hasExited) this.setRef?.(this.pid, true);
  }

  /** Called when reaped: 'exit' now, 'close' once every pipe closed too. */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.hasExited = true;
    this.exitCode = code;
    this.signalCode = signal;
    // Like ChildProcess: nobody reads what is written to an exited process's stdin.
    this.stdio[0]?.destroy();
    this.emit('exit', code, signal);
    if (this.openStreams === 0) this.emit('close', code, signal);
  }

  private streamClosed(): void {
    if (--this.openStreams === 0 && this.hasExited) this.emit('close', this.exitCode, this.signalCode);
  }
}

type ReaperBinding = Pick<NativeBinding, 'createReaper'>;

/**
 * One process's native spawns: the addon's binding, loaded on first use by `load` (null: the caller
 * uses child_process), the reaper made on the first spawn, and its running children by pid.
 */
export class NativeSpawner<B extends ReaperBinding> {
  private binding: B | null | undefined;
  private reaper: object | undefined;
  private readonly running = new Map<number, NativeChild>();

  constructor(private readonly load: () => B | null) {}

  /** Loads the addon on first use; false means: use child_process. */
  available(): boolean {
    if (this.binding === undefined) this.binding = this.load();
    return this.binding !== null;
  }

  /** The binding and the reaper to give spawnProcess (made now on the first spawn); throws when not available(). */
  start(): { binding: B; reaper: object } {
    if (!this.available()) throw new Error('native spawn is not available');
    const binding = this.binding as B;
    this.reaper ??= binding.createReaper(this.onExit);
    return { binding, reaper: this.reaper };
  }

  /** Routes the reaper's report of this child's exit to it. */
  track(child: NativeChild): NativeChild {
    if (child.pid !== undefined) this.running.set(child.pid, child);
    return child;
  }

  private readonly onExit = (pid: number, code: number | null, signal: number | null): void => {
    const child = this.running.get(pid);
    if (!child) return;
    this.running.delete(pid);
    child.exited(code, signal === null ? null : signalName(signal));
  };
}
