// `wrenn envd`: runs envd until SIGTERM/SIGINT.
import { startEnvd } from './server.js';
import { installLiteHeaders } from './lite-headers.js';
import { startIdleMemoryRelease } from './idle-memory.js';
import { nativeSpawnAvailable } from './process/native-spawn.js';

export async function runEnvdFromCli(opts: { port: number; host: string }): Promise<void> {
  // Node's own Headers loads undici (and its WebAssembly parser): ~3 MB per capsule for nothing.
  installLiteHeaders();
  const server = await startEnvd({ port: opts.port, host: opts.host });
  process.stderr.write(`${JSON.stringify({ level: 'info', msg: 'envd listening', port: server.port, version: server.state.version })}\n`);
  // The spawn addon loads (~0.5-1 ms) right after the first requests could be served rather than
  // inside a new capsule's first command.
  setImmediate(nativeSpawnAvailable);
  // WRENN_ENVD_IDLE_RELEASE=0 keeps every page mapped (for comparisons).
  const stopRelease = process.env.WRENN_ENVD_IDLE_RELEASE === '0' ? () => undefined : startIdleMemoryRelease();
  const stop = () => {
    stopRelease();
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
