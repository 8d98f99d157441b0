// envd's own entry point, used inside capsules (bundled into one file by scripts/bundle-envd.mjs so
// it starts fast): `node envd.mjs [--port 49983] [--host 0.0.0.0]`. `wrenn envd` is the same server.
import { runEnvdFromCli } from './cli.js';
import { ENVD_PORT } from './version.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}

const port = Number(flag('--port', process.env.WRENN_ENVD_PORT ?? String(ENVD_PORT)));
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`envd: --port must be a whole number from 0 to 65535\n`);
  process.exit(2);
}
runEnvdFromCli({ port, host: flag('--host', process.env.WRENN_ENVD_HOST ?? '0.0.0.0') }).catch((err: unknown) => {
  process.stderr.write(`envd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
