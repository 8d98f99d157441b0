// Commands in a capsule: run to completion or in the background, stream output, send stdin,
// list, kill and re-attach. One WebSocket per command (/v1/capsules/:id/commands and
// /v1/capsules/:id/processes/:pid/connect); JSON text frames both ways.

import { CommandExitError, errorFromResponse, TimeoutError, WrennError } from './errors.js';
import type { ApiClient } from './http.js';
import { encodeText, fromBase64, type ProcessInfo, toBase64 } from './types.js';
import type { Socket } from './websocket.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Why the process ended abnormally (signal, timeout), when it did. */
  error?: string;
}

export interface CommandStartOptions {
  /** Called with each chunk of standard output as text. */
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  envs?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Kill the command after this many ms (0 = never; default 60 000 for run, none in the background). */
  timeoutMs?: number;
  /**
   * Input: text or bytes are written and stdin is closed; `true` keeps stdin open for
   * handle.sendStdin (background commands).
   */
  stdin?: string | Uint8Array | boolean;
  /** A name to find the process by later (commands.list). */
  tag?: string;
}

export interface RunOptions extends CommandStartOptions {
  background?: false;
}

export interface BackgroundOptions extends CommandStartOptions {
  background: true;
}

interface ServerEvent {
  type: 'start' | 'stdout' | 'stderr' | 'exit' | 'error';
  pid?: number;
  data?: string;
  exit_code?: number;
  error?: string | { code: string; message: string };
}

/** A running command: its output so far, and wait/kill/sendStdin/disconnect. */
export class CommandHandle {
  readonly pid: number;
  private stdoutChunks: string[] = [];
  private stderrChunks: string[] = [];
  private readonly result: Promise<CommandResult>;
  private readonly decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };

  /** @internal */
  constructor(
    private readonly socket: Socket,
    pid: number,
    private readonly commands: Commands,
    private readonly hooks: { onStdout?: (d: string) => void; onStderr?: (d: string) => void },
    /** Events that arrived before the handle existed. */
    early: ServerEvent[],
    private readonly timeoutMs: number,
  ) {
    this.pid = pid;
    this.result = new Promise<CommandResult>((resolve, reject) => {
      let exit: CommandResult | undefined;
      let failure: WrennError | undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onEvent = (ev: ServerEvent) => {
        if (ev.type === 'stdout' || ev.type === 'stderr') {
          const text = this.decoders[ev.type].decode(fromBase64(ev.data ?? ''), { stream: true });
          if (!text) return;
          (ev.type === 'stdout' ? this.stdoutChunks : this.stderrChunks).push(text);
          (ev.type === 'stdout' ? this.hooks.onStdout : this.hooks.onStderr)?.(text);
        } else if (ev.type === 'exit') {
          exit = {
            stdout: this.stdout,
            stderr: this.stderr,
            exitCode: ev.exit_code ?? -1,
            ...(typeof ev.error === 'string' && ev.error ? { error: ev.error } : {}),
          };
        } else if (ev.type === 'error' && typeof ev.error === 'object') {
          failure = errorFromResponse(statusOf(ev.error.code), { error: ev.error }, ev.error.message);
        }
      };
      for (const ev of early) onEvent(ev);
      socket.onMessage((d) => {
        if (typeof d === 'string') onEvent(JSON.parse(d) as ServerEvent);
      });
      if (this.timeoutMs > 0) {
        timer = setTimeout(() => {
          failure = new TimeoutError(`command (pid ${pid}) did not finish within ${this.timeoutMs} ms; it was killed`, {
            code: 'timeout',
          });
          this.sendJson({ type: 'kill' });
        }, this.timeoutMs);
      }
      socket.onClose((code, reason) => {
        if (timer) clearTimeout(timer);
        if (failure) reject(failure);
        else if (exit) resolve(exit);
        else if (this.detached)
          reject(
            new WrennError(`disconnected from command (pid ${pid}); it keeps running — use commands.connect(${pid})`, {
              code: 'disconnected',
            }),
          );
        else
          reject(
            new WrennError(`connection to command (pid ${pid}) closed before it exited (${code} ${reason})`, {
              code: 'disconnected',
            }),
          );
      });
    });
    // Callers that never wait must not see an unhandled rejection.
    this.result.catch(() => undefined);
  }

  private detached = false;

  get stdout(): string {
    return this.stdoutChunks.join('');
  }
  get stderr(): string {
    return this.stderrChunks.join('');
  }

  private sendJson(v: unknown): void {
    if (this.socket.isOpen) this.socket.send(JSON.stringify(v));
  }

  /** Waits for the command to end; throws CommandExitError when its exit code is not 0. */
  async wait(): Promise<CommandResult> {
    const r = await this.result;
    if (r.exitCode !== 0) throw new CommandExitError(r);
    return r;
  }

  /** Writes to the command's standard input (start it with `stdin: true`). */
  async sendStdin(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? encodeText(data) : data;
    if (this.socket.isOpen) this.sendJson({ type: 'stdin', data: toBase64(bytes) });
    else await this.commands.sendStdin(this.pid, bytes);
  }

  /** Closes standard input (the command sees end of file). */
  async closeStdin(): Promise<void> {
    if (this.socket.isOpen) this.sendJson({ type: 'close_stdin' });
    else await this.commands.closeStdin(this.pid);
  }

  /** Kills the command (SIGKILL). Returns false when it had already ended. */
  async kill(): Promise<boolean> {
    return this.commands.kill(this.pid);
  }

  /** Stops receiving output; the command keeps running. */
  async disconnect(): Promise<void> {
    this.detached = true;
    this.socket.close(1000, 'client disconnected');
  }
}

const STATUS: Record<string, number> = {
  not_found: 404,
  invalid_argument: 400,
  unauthenticated: 401,
  conflict: 409,
  deadline_exceeded: 504,
};
const statusOf = (code: string) =>
  STATUS[code] ?? (code.startsWith('capsule_') || code === 'failed_precondition' ? 409 : 500);

export class Commands {
  /** @internal */
  constructor(
    private readonly api: ApiClient,
    private readonly capsuleId: string,
  ) {}

  private path(suffix: string): string {
    return `/v1/capsules/${encodeURIComponent(this.capsuleId)}${suffix}`;
  }

  /**
   * Runs a shell command line (`/bin/sh -c cmd`). Waits for it and returns its output, or throws
   * CommandExitError on a non-zero exit; with `background: true` returns a handle at once.
   */
  run(cmd: string, opts: BackgroundOptions): Promise<CommandHandle>;
  run(cmd: string, opts?: RunOptions): Promise<CommandResult>;
  async run(cmd: string, opts: RunOptions | BackgroundOptions = {}): Promise<CommandResult | CommandHandle> {
    if (typeof cmd !== 'string' || cmd.length === 0)
      throw new TypeError('commands.run needs a command line, e.g. "echo hello"');
    const background = opts.background === true;
    const timeoutMs = opts.timeoutMs ?? (background ? 0 : 60_000);
    const socket = await this.api.socket(this.path('/commands'));
    const keepStdin = opts.stdin === true || (background && opts.stdin === undefined);
    socket.send(
      JSON.stringify({
        cmd,
        ...(opts.envs ? { env: opts.envs } : {}),
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.user ? { user: opts.user } : {}),
        ...(opts.tag ? { tag: opts.tag } : {}),
        stdin: keepStdin || typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array,
        background,
      }),
    );
    const handle = await this.handleFrom(socket, opts, timeoutMs);
    if (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array) {
      await handle.sendStdin(opts.stdin);
      await handle.closeStdin();
    }
    if (background) return handle;
    return handle.wait();
  }

  /** Attaches to a running process (started in the background) to stream its output. */
  async connect(
    pid: number,
    opts: { onStdout?: (d: string) => void; onStderr?: (d: string) => void; timeoutMs?: number } = {},
  ): Promise<CommandHandle> {
    const socket = await this.api.socket(this.path(`/processes/${pid}/connect`));
    return this.handleFrom(socket, opts, opts.timeoutMs ?? 0);
  }

  /** Processes started through envd (commands and terminals). */
  async list(): Promise<ProcessInfo[]> {
    const r = await this.api.json<{ processes: ProcessInfo[] }>('GET', this.path('/processes'));
    return r.processes;
  }

  /** Kills a process (SIGKILL). Returns false when there was no such process. */
  async kill(pid: number): Promise<boolean> {
    try {
      await this.api.json('DELETE', this.path(`/processes/${pid}`));
      return true;
    } catch (err) {
      if (err instanceof WrennError && err.status === 404 && !/capsule/.test(err.message)) return false;
      throw err;
    }
  }

  /** Writes to a background process's standard input. */
  async sendStdin(pid: number, data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? encodeText(data) : data;
    await this.api.json('POST', this.path(`/processes/${pid}/stdin`), { json: { data_base64: toBase64(bytes) } });
  }

  async closeStdin(pid: number): Promise<void> {
    await this.api.json('POST', this.path(`/processes/${pid}/stdin`), { json: { close: true } });
  }

  private handleFrom(socket: Socket, opts: CommandStartOptions, timeoutMs: number): Promise<CommandHandle> {
    return new Promise<CommandHandle>((resolve, reject) => {
      const early: ServerEvent[] = [];
      let done = false;
      socket.onMessage((d) => {
        if (done || typeof d !== 'string') return;
        const ev = JSON.parse(d) as ServerEvent;
        if (ev.type === 'start') {
          done = true;
          const hooks = {
            ...(opts.onStdout ? { onStdout: opts.onStdout } : {}),
            ...(opts.onStderr ? { onStderr: opts.onStderr } : {}),
          };
          resolve(new CommandHandle(socket, ev.pid ?? 0, this, hooks, early, timeoutMs));
        } else if (ev.type === 'error' && typeof ev.error === 'object') {
          done = true;
          reject(errorFromResponse(statusOf(ev.error.code), { error: ev.error }, ev.error.message));
        } else early.push(ev);
      });
      socket.onClose((code, reason) => {
        if (!done) {
          done = true;
          reject(
            new WrennError(`the command did not start (connection closed: ${code} ${reason})`, {
              code: 'disconnected',
            }),
          );
        }
      });
    });
  }
}
