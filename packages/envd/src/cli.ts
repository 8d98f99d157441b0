// `wrenn envd`: runs envd until SIGTERM/SIGINT.

import { closeSync, writeSync } from 'node:fs';
import { startCodeInterpreter } from './code-interpreter.js';
import { startExecWarmUp } from './exec-warm-up.js';
import { startIdleMemoryRelease } from './idle-memory.js';
import { installLiteHeaders } from './lite-headers.js';
import { nativeSpawnAvailable } from './process/native-spawn.js';
import { startEnvd } from './server.js';

export async function runEnvdFromCli(opts: { port: number; host: string }): Promise<void> {
  // Node's own Headers loads undici (and its WebAssembly parser): ~3 MB per capsule for nothing.
  installLiteHeaders();
  // Only inside capsules whose template asks for it (code-interpreter-v1). Started before envd
  // listens: its kernel boot is the longest part of such a capsule's create.
  const stopCodeInterpreter =
    process.env.WRENN_CAPSULE === '1' ? startCodeInterpreter({ envdPort: opts.port }) : () => undefined;
  const server = await startEnvd({ port: opts.port, host: opts.host });
  process.stderr.write(
    `${JSON.stringify({ level: 'info', msg: 'envd listening', port: server.port, version: server.state.version })}\n`,
  );
  sayReady();
  // The spawn addon loads (~0.5-1 ms) right after the first requests could be served rather than
  // inside a new capsule's first command.
  setImmediate(nativeSpawnAvailable);
  // A new capsule's first command costs ~3x the next one: envd runs one itself, once, in the background.
  const stopWarmUp = startExecWarmUp({ port: server.port, host: opts.host, state: server.state });
  // WRENN_ENVD_IDLE_RELEASE=0 keeps every page mapped (for comparisons).
  const stopRelease = process.env.WRENN_ENVD_IDLE_RELEASE === '0' ? () => undefined : startIdleMemoryRelease();
  const stop = () => {
    stopWarmUp();
    stopRelease();
    stopCodeInterpreter();
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * Inside a capsule the init waits for envd on a pipe (WRENN_READY_FD, see the namespace runtime's
 * nsinit.c) instead of polling /health: say "ready" there once listening, then close it so no
 * process envd starts inherits it.
 */
function sayReady(): void {
  const raw = process.env.WRENN_READY_FD;
  delete process.env.WRENN_READY_FD;
  if (!raw || !/^\d+$/.test(raw)) return;
  const fd = Number(raw);
  try {
    writeSync(fd, 'ready\n');
  } catch {
    // the init is gone or polls /health instead
  }
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
