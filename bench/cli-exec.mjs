#!/usr/bin/env node
// `wrenn exec <id> -- true` end to end (prints JSON): wall time of the whole CLI process against a
// live `wrenn up` on loopback, and the share of it spent starting the CLI (`wrenn --version`:
// Node's own boot plus loading the command line), with Node's bare boot (`node -e ''`) and the
// SDK call alone (commands.run in a warm process) for comparison.
// Run as root after `npm run build`. Uses its own data dir, address pool and interface names.
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Capsule } from '../packages/sdk/dist/src/index.js';
import { startBenchStack } from './lib/bench-stack.mjs';

const N = Number(process.env.BENCH_N ?? 20);
const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../packages/cli/bin/wrenn.js');
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x) => Math.round(x * 100) / 100;
const summary = (xs) => ({
  p50_ms: round(pct(xs, 50)),
  p90_ms: round(pct(xs, 90)),
  min_ms: round(Math.min(...xs)),
  n: xs.length,
});

function timed(args, env) {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', rej);
    child.on('close', (code) =>
      code === 0 ? res(performance.now() - t0) : rej(new Error(`${args.join(' ')} exited ${code}: ${err}`)),
    );
  });
}

const stack = await startBenchStack(
  'cli',
  { pool: '10.216.0.0/24', prefix: 'x', metadataPort: 31253, rateMbit: 0 },
  process.env.WRENN_BENCH_IMAGES ? { imagesDir: process.env.WRENN_BENCH_IMAGES } : {},
);
const { up, dataDir } = stack;
const env = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: dataDir,
  WRENN_API_KEY: up.adminKey,
  WRENN_BASE_URL: up.url,
};
const result = { bench: 'cli-exec', runtime: 'namespace', template: 'minimal', n: N };
try {
  const cap = await Capsule.create({ apiKey: up.adminKey, baseUrl: up.url, timeoutSec: 600 });
  const exec = ['--', BIN, 'exec', cap.capsuleId, '--', 'true'].slice(1);
  // Warm-up: the page cache and the control plane's first requests.
  for (let i = 0; i < 3; i++) await timed(exec, env);
  const node = [];
  const version = [];
  const cli = [];
  const sdk = [];
  // Interleaved, so machine load drifts affect every measure alike.
  for (let i = 0; i < N; i++) {
    node.push(await timed(['-e', ''], env));
    version.push(await timed([BIN, '--version'], env));
    cli.push(await timed(exec, env));
    const t0 = performance.now();
    await cap.commands.run('true');
    sdk.push(performance.now() - t0);
  }
  result.exec_end_to_end = summary(cli);
  result.cli_startup = summary(version);
  result.node_boot = summary(node);
  result.sdk_run_in_process = summary(sdk);
  result.startup_share_of_exec = round(pct(version, 50) / pct(cli, 50));
  result.node_boot_share_of_exec = round(pct(node, 50) / pct(cli, 50));
  await cap.destroy();
} finally {
  await stack.stop();
}
console.log(JSON.stringify(result, null, 2));
