// Entry of the code-interpreter server (bundled as code-interpreter/server.cjs, started by envd in
// code-interpreter-v1 capsules, see ../code-interpreter.ts): starts the python and javascript
// contexts, then listens; the agent hands the capsule out once the port accepts, so the first
// runCode never waits for a kernel boot.
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { Contexts } from './contexts.js';
import { codeInterpreterServer } from './http-server.js';
import { LANGUAGES } from './languages.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '49999' },
    host: { type: 'string', default: '0.0.0.0' },
    cwd: { type: 'string', default: process.env.HOME ?? '/' },
    'envd-port': { type: 'string', default: '49983' },
    'kernel-dir': { type: 'string' },
  },
});
const port = Number(values.port);
const envdPort = Number(values['envd-port']);
if (!Number.isInteger(port) || !Number.isInteger(envdPort)) throw new Error('--port and --envd-port take port numbers');
// The bundle's server.cjs sits beside kernel_startup.py and node_kernel.cjs.
const kernelDir = values['kernel-dir'] ?? dirname(process.argv[1] ?? '.');
async function main(): Promise<void> {
  const contexts = new Contexts({ kernelDir, cwd: values.cwd, envdPort });
  await Promise.all([contexts.defaultFor('python'), contexts.defaultFor('javascript')]);
  const server = codeInterpreterServer(contexts);
  server.listen(port, values.host, () =>
    process.stderr.write(
      `${JSON.stringify({ level: 'info', msg: 'code interpreter listening', port, languages: LANGUAGES })}\n`,
    ),
  );
  // Exit at once, as the capsule goes away: the kernels' process groups are killed and any
  // response in flight is cut (the SDK then reports the sandbox killed), not ended with an error.
  const stop = () => {
    for (const ctx of contexts.all.values()) ctx.killNow();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'error', msg: 'code interpreter failed to start', err: String(err) })}\n`,
  );
  process.exit(1);
});
