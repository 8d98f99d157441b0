// Whether any process other than the capsule's init (pid 1) and envd itself runs in envd's pid
// namespace: envd's heartbeat sleeps once quiet only when none does. In a quiet capsule nothing
// else runs, and every new process comes through envd (a Start or PTY request wakes it), but a
// daemon or background job that outlived its command is still a process here and may start
// listening at any time, so the port forwarder keeps scanning while one exists. Read from envd's
// own /proc (a namespace capsule mounts it for its pid namespace, so it lists only the capsule's
// processes): one readdir plus one small stat read, microseconds, and only at beats. Kernel
// threads (a VM guest's /proc lists them) and zombies are not counted; kernel threads are
// remembered by pid so they are not read again, and forgotten when their pid is gone.
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';

/** PF_KTHREAD in /proc/<pid>/stat's flags (field 9). */
const PF_KTHREAD = 0x00200000;

export class OtherProcesses {
  private readonly kernelThreads = new Set<number>();
  private readonly buf = Buffer.alloc(1024);

  constructor(
    private readonly procDir = '/proc',
    private readonly self = process.pid,
  ) {}

  /** True when one exists, or when /proc cannot be read (then envd cannot tell and stays awake). */
  exist(): boolean {
    let names: string[];
    try {
      names = readdirSync(this.procDir);
    } catch {
      return true;
    }
    const listed = new Set<number>();
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue; // not a pid
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === 1 || pid === this.self) continue;
      listed.add(pid);
      if (this.kernelThreads.has(pid)) continue;
      const kind = this.kind(pid);
      if (kind === 'kernel') this.kernelThreads.add(pid);
      else if (kind === 'live') return true;
    }
    for (const pid of this.kernelThreads) if (!listed.has(pid)) this.kernelThreads.delete(pid);
    return false;
  }

  /** 'live', 'kernel', or 'gone' (a zombie, or it ended before its stat was read). */
  private kind(pid: number): 'live' | 'kernel' | 'gone' {
    let text: string;
    try {
      const fd = openSync(`${this.procDir}/${pid}/stat`, 'r');
      try {
        text = this.buf.toString('latin1', 0, readSync(fd, this.buf, 0, this.buf.length, 0));
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      // Gone: it ended meanwhile. Anything else (EMFILE, say): cannot tell, so it counts as live.
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' || code === 'ESRCH' ? 'gone' : 'live';
    }
    // After the command (which may hold spaces and parentheses): state is field 3, flags field 9.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return 'gone';
    const flags = Number(f[6]);
    if (Number.isFinite(flags) && (flags & PF_KTHREAD) !== 0) return 'kernel';
    return 'live';
  }
}
