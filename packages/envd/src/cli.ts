// `wrenn envd`: runs envd until SIGTERM/SIGINT.
import { startEnvd } from './server.js';

export async function runEnvdFromCli(opts: { port: number; host: string }): Promise<void> {
  const server = await startEnvd({ port: opts.port, host: opts.host });
  process.stderr.write(`${JSON.stringify({ level: 'info', msg: 'envd listening', port: server.port, version: server.state.version })}\n`);
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
