// Interactive terminals: one WebSocket per terminal (/v1/capsules/:id/pty). Terminal bytes go both
// ways as binary frames; resize and kill are JSON text frames.

import { errorFromResponse, WrennError } from './errors.js';
import type { ApiClient } from './http.js';
import { encodeText } from './types.js';
import type { Socket } from './websocket.js';

export interface PtyCreateOptions {
  cols?: number;
  rows?: number;
  /** Terminal output as it arrives. */
  onData?: (data: Uint8Array) => void;
  /** Re-attach to the terminal with this tag if it is still running, else start one under it. */
  tag?: string;
  /** Program instead of the login shell. */
  cmd?: string;
}

/** A terminal in a capsule. */
export class PtyHandle {
  readonly pid: number;
  readonly tag: string;
  private readonly exited: Promise<{ exitCode: number }>;

  /** @internal */
  constructor(
    private readonly socket: Socket,
    start: { pid: number; tag: string },
  ) {
    this.pid = start.pid;
    this.tag = start.tag;
    this.exited = new Promise((resolve, reject) => {
      let exitCode: number | undefined;
      socket.onMessage((d) => {
        if (typeof d === 'string') {
          const m = JSON.parse(d) as { type: string; exit_code?: number };
          if (m.type === 'exit') exitCode = m.exit_code ?? -1;
        }
      });
      socket.onClose((code, reason) => {
        if (exitCode !== undefined) resolve({ exitCode });
        else reject(new WrennError(`terminal connection closed (${code} ${reason})`, { code: 'disconnected' }));
      });
    });
    this.exited.catch(() => undefined);
  }

  /** Sends keystrokes (text or raw bytes) to the terminal. */
  async sendInput(data: string | Uint8Array): Promise<void> {
    this.socket.send(typeof data === 'string' ? encodeText(data) : data);
  }

  async resize(size: { cols: number; rows: number }): Promise<void> {
    this.socket.send(JSON.stringify({ type: 'resize', cols: size.cols, rows: size.rows }));
  }

  /** Ends the terminal's process. */
  async kill(): Promise<void> {
    this.socket.send(JSON.stringify({ type: 'kill' }));
  }

  /** Resolves with the shell's exit code when it ends. */
  wait(): Promise<{ exitCode: number }> {
    return this.exited;
  }

  /** Stops receiving output; the terminal keeps running (pty.connect with its tag to re-attach). */
  async disconnect(): Promise<void> {
    this.socket.close(1000, 'client disconnected');
  }
}

export class Pty {
  /** @internal */
  constructor(
    private readonly api: ApiClient,
    private readonly capsuleId: string,
  ) {}

  /** Starts a terminal (or re-attaches to the one with `tag`). */
  async create(opts: PtyCreateOptions = {}): Promise<PtyHandle> {
    const socket = await this.api.socket(`/v1/capsules/${encodeURIComponent(this.capsuleId)}/pty`, {
      cols: opts.cols ?? 80,
      rows: opts.rows ?? 24,
      tag: opts.tag,
      cmd: opts.cmd,
    });
    return new Promise<PtyHandle>((resolve, reject) => {
      let handle: PtyHandle | undefined;
      const early: Uint8Array[] = [];
      socket.onMessage((d) => {
        if (typeof d !== 'string') {
          if (opts.onData) opts.onData(d);
          else if (!handle) early.push(d);
          return;
        }
        const m = JSON.parse(d) as {
          type: string;
          pid?: number;
          tag?: string;
          error?: { code: string; message: string };
        };
        if (m.type === 'start' && !handle) {
          handle = new PtyHandle(socket, { pid: m.pid ?? 0, tag: m.tag ?? '' });
          this.handles.set(handle.pid, handle);
          const h = handle;
          socket.onClose(() => this.handles.delete(h.pid));
          resolve(handle);
        } else if (m.type === 'error' && m.error && !handle) {
          reject(
            errorFromResponse(
              m.error.code === 'not_found' ? 404 : m.error.code === 'invalid_argument' ? 400 : 409,
              { error: m.error },
              m.error.message,
            ),
          );
        }
      });
      socket.onClose((code, reason) => {
        if (!handle)
          reject(
            new WrennError(`the terminal did not start (connection closed: ${code} ${reason})`, {
              code: 'disconnected',
            }),
          );
      });
    });
  }

  /** Re-attaches to a running terminal by its tag. */
  connect(tag: string, opts: Omit<PtyCreateOptions, 'tag'> = {}): Promise<PtyHandle> {
    return this.create({ ...opts, tag });
  }

  /** Keystrokes to a terminal of this client, by handle or pid (as in E2B: pty.sendInput(pid, data)). */
  async sendInput(target: PtyHandle | number, data: string | Uint8Array): Promise<void> {
    return this.handle(target).sendInput(data);
  }

  async resize(target: PtyHandle | number, size: { cols: number; rows: number }): Promise<void> {
    return this.handle(target).resize(size);
  }

  async kill(target: PtyHandle | number): Promise<void> {
    return this.handle(target).kill();
  }

  private readonly handles = new Map<number, PtyHandle>();

  private handle(target: PtyHandle | number): PtyHandle {
    if (typeof target !== 'number') return target;
    const h = this.handles.get(target);
    if (!h)
      throw new TypeError(`no terminal with pid ${target} was created by this client; pass the handle from pty.create`);
    return h;
  }
}
