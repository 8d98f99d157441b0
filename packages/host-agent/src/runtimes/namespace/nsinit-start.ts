// Starting a namespace capsule: `wrenn-nsinit start` (nsinit.c) is spawned detached, builds the
// namespaces and the root, starts the init and envd, and reports on a status pipe: "pid <n>" when
// the init runs, "ready" once envd listens, "error <why>" otherwise. This waits for that, records
// the init's and the helper's (pid, start time), and on failure says why with the log's tail.
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnNative } from '@wrenn/native';
import type { NamespaceState } from './namespace-runtime.js';
import { readStartTime } from './proc-start-time.js';

export interface StartInit {
  /** The wrenn-nsinit binary. */
  helper: string;
  args: string[];
  env: Record<string, string>;
  /** The capsule's log (the helper's own output goes there too). */
  logPath: string;
}

/**
 * Runs the helper and resolves once envd is ready, with the time the init was seen running.
 * Fills state.pid/startTime (the init) and helperPid/helperStartTime.
 */
export async function startInit(state: NamespaceState, o: StartInit): Promise<number> {
  const { spec } = state;
  const log = openSync(o.logPath, 'a');
  let tInit = 0;
  try {
    // A vfork spawn (@wrenn/native): a fork of the agent costs 3-5 ms here, more under load.
    const child = spawnNative(o.helper, o.args, { stdio: ['ignore', log, log, 'pipe'], detached: true, env: o.env });
    if (child.pid === undefined) {
      const [err] = (await once(child, 'error')) as [Error];
      throw new Error(
        `capsule ${spec.id} failed to start: could not run ${o.helper}: ${err.message}${logTail(o.logPath)}`,
      );
    }
    state.helperPid = child.pid;
    state.helperStartTime = readStartTime(child.pid) ?? '';
    const status = child.stdio[3] as NodeJS.ReadableStream;
    const lines = createInterface({ input: status });
    const exited = new Promise<number>((res) => child.once('exit', (code, sig) => res(code ?? (sig ? 128 : 1))));
    child.once('error', () => undefined);
    try {
      await new Promise<void>((resolveReady, reject) => {
        // The helper exits once it has copied the capsule's last output into the log: wait for
        // that (briefly) so the message shows it.
        let settled = false;
        const fail = (msg: string) => {
          if (settled) return;
          settled = true;
          void Promise.race([exited, sleep(2000, undefined, { ref: false })]).then(() =>
            reject(new Error(`capsule ${spec.id} failed to start: ${msg}${logTail(o.logPath)}`)),
          );
        };
        lines.on('line', (line) => {
          if (line.startsWith('pid ')) {
            state.pid = Number(line.slice(4));
            state.startTime = readStartTime(state.pid) ?? '';
            tInit = performance.now();
          } else if (line === 'ready' && !settled) {
            settled = true;
            resolveReady();
          } else if (line.startsWith('error ')) {
            fail(line.slice(6));
          }
        });
        lines.once('close', () => fail('the init exited before envd was ready'));
        child.once('error', (err) => fail(`could not run ${o.helper}: ${err.message}`));
        void exited.then((code) => {
          if (code !== 0) fail(`wrenn-nsinit exited with code ${code}`);
        });
      });
    } finally {
      lines.close();
      (status as unknown as { destroy(): void }).destroy();
      child.unref();
    }
  } finally {
    closeSync(log);
  }
  return tInit;
}

/** The last lines of the capsule's log (and of its rotated half when the current one is short). */
function logTail(path: string): string {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  const text = `${read(`${path}.1`)}${read(path)}`.trim();
  return text ? `\n--- last lines of ${path} ---\n${text.split('\n').slice(-15).join('\n')}` : '';
}
