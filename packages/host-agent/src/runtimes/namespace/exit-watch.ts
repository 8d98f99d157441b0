// Tells the agent the moment a namespace capsule's init exits (it exits when envd, its main
// process, does), through a pidfd (../pid-exit-watch.ts), so a restarted agent re-opens the watch
// from the persisted pid. The init is the `wrenn-nsinit start` helper's child, not ours, so the exit
// status is not ours to reap; the init writes it as its last line of envd.log, and the reason given
// is that log's tail.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { watchPidExit } from '../pid-exit-watch.js';
import type { NamespaceState } from './namespace-runtime.js';

const TAIL_BYTES = 2048;
const TAIL_LINES = 8;

/** The last lines of a file (at most TAIL_BYTES), or '' when it cannot be read. */
export async function tailOf(path: string): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, TAIL_BYTES);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      const lines = buf
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      if (len < size) lines.shift(); // a partial first line
      return lines.slice(-TAIL_LINES).join('\n');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/** Why the capsule stopped, in words: the init's own report of envd's exit and the log's tail. */
export async function exitReason(s: NamespaceState): Promise<string> {
  const tail = await tailOf(join(s.sandboxDir, 'envd.log'));
  const status = /wrenn-init: main process (exited with code \d+|killed by signal \d+[^\n]*)/.exec(tail)?.[1];
  return `the capsule's init exited: envd ${status ?? 'is gone (exit status unknown)'}${tail ? `; last lines of envd.log:\n${tail}` : ''}`;
}

/**
 * Calls onExit once when the init of `s` has exited (at once when it is already gone or its pid is
 * now another process). Returns the function that stops watching.
 */
export function watchInitExit(s: NamespaceState, isOurs: () => boolean, onExit: () => void): () => void {
  return watchPidExit(s.pid, isOurs, onExit);
}
