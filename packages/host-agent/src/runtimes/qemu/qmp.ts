// A small QMP (QEMU Machine Protocol) client over a unix socket: JSON lines, one command at a
// time, events kept aside. Enough for status, stop/cont, migration and quit.
import { connect, type Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: unknown;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  command: string;
}

export class QmpClient {
  private buf = '';
  private readonly queue: Pending[] = [];
  private closed = false;
  private greeted?: { resolve: () => void; reject: (e: Error) => void };
  readonly events: QmpEvent[] = [];

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    const fail = (err: Error) => {
      this.closed = true;
      this.greeted?.reject(err);
      for (const p of this.queue.splice(0)) p.reject(new Error(`QMP ${p.command}: ${err.message}`));
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }

  /** Connects (retrying until `timeoutMs` while QEMU creates the socket) and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const c = new QmpClient(sock);
        await new Promise<void>((resolve, reject) => {
          c.greeted = { resolve, reject };
          setTimeout(() => reject(new Error('no QMP greeting within 10 s')), 10_000).unref();
        });
        await c.execute('qmp_capabilities');
        return c;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`cannot connect to QMP at ${path}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private onData(d: string): void {
    this.buf += d;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ('QMP' in msg) {
        this.greeted?.resolve();
        this.greeted = undefined;
      } else if ('event' in msg) {
        this.events.push({ event: String(msg.event), data: msg.data });
      } else if ('return' in msg || 'error' in msg) {
        const p = this.queue.shift();
        if (!p) continue;
        if ('error' in msg) {
          const e = msg.error as { class?: string; desc?: string };
          p.reject(new Error(`QMP ${p.command} failed: ${e.desc ?? 'unknown error'} (${e.class ?? '?'})`));
        } else p.resolve(msg.return);
      }
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: connection closed`));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ resolve: resolve as (v: unknown) => void, reject, command });
      this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  async status(): Promise<string> {
    return (await this.execute<{ status: string }>('query-status')).status;
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }
}
