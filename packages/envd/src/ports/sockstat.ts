// The forwarder's cheap per-tick check: how many TCP sockets of this network namespace are hashed
// (`TCP: inuse` in /proc/net/sockstat, `TCP6: inuse` in sockstat6). The kernel keeps these as
// per-namespace counters, so reading them is O(1) (a few microseconds), unlike /proc/net/tcp,
// which walks the host-wide established hash. listen() hashes a socket and close() unhashes it,
// so a server starting or stopping changes them; the listeners are listed only then.
import { closeSync, openSync, readSync } from 'node:fs';

export interface TcpInuse {
  /** IPv4 TCP sockets hashed (listening or connected); undefined when the line is missing. */
  tcp?: number;
  tcp6?: number;
}

/** Reads `TCP: inuse N` and `TCP6: inuse N` from the text of sockstat and/or sockstat6. */
export function parseSockstat(text: string): TcpInuse {
  const out: TcpInuse = {};
  const v4 = /^TCP: inuse (\d+)/m.exec(text);
  const v6 = /^TCP6: inuse (\d+)/m.exec(text);
  if (v4) out.tcp = Number(v4[1]);
  if (v6) out.tcp6 = Number(v6[1]);
  return out;
}

/**
 * Keeps sockstat and sockstat6 open and re-reads them from offset 0 (one pread each per call, no
 * path lookup). A file that cannot be opened or read is tried again at the next call.
 */
export class SockstatReader {
  private readonly fds = new Map<string, number>();
  private readonly buf = Buffer.alloc(2048);

  constructor(private readonly procNet = '/proc/net') {}

  /** "tcp tcp6" counts as one comparable key, or undefined when sockstat is unreadable. */
  key(): string | undefined {
    const v4 = this.read('sockstat');
    if (v4 === undefined) return undefined;
    // sockstat6 is absent without IPv6: then only the IPv4 count decides.
    const v6 = this.read('sockstat6') ?? '';
    const inuse = parseSockstat(v4 + v6);
    if (inuse.tcp === undefined) return undefined;
    return `${inuse.tcp} ${inuse.tcp6 ?? '-'}`;
  }

  private read(name: string): string | undefined {
    let fd = this.fds.get(name);
    try {
      if (fd === undefined) {
        fd = openSync(`${this.procNet}/${name}`, 'r');
        this.fds.set(name, fd);
      }
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      return this.buf.toString('latin1', 0, n);
    } catch {
      if (fd !== undefined) this.closeOne(name, fd);
      return undefined;
    }
  }

  private closeOne(name: string, fd: number): void {
    this.fds.delete(name);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }

  close(): void {
    for (const [name, fd] of [...this.fds]) this.closeOne(name, fd);
  }
}
