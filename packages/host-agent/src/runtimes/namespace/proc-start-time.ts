// A pid alone does not name a process for long: pids are reused. The start time in
// /proc/<pid>/stat does, so the runtime keeps (pid, start time) for a capsule's init and helper
// and compares both before it signals, waits for or enters them.
import { readFileSync } from 'node:fs';

/** Start time of a live (non-zombie) process, to tell it from a later process with the same pid. */
export function readStartTime(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, starttime field 22.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? undefined : f[19]; // a zombie is not alive
  } catch {
    return undefined;
  }
}
