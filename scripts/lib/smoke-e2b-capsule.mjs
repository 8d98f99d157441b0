#!/usr/bin/env node
// One capsule through the official e2b SDK against a real `wrenn up` (the CLI, started with the
// node running this script), with a fresh data dir: create, run a command, check that envd in the
// capsule runs this same node release, kill; then stop `wrenn up` and remove the data dir.
// A stopped `wrenn up` with no capsule left removes its namespaces, chains and cgroups itself.
// Used by scripts/smoke-node-line.mjs; run as root from the repository root after the build.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from 'e2b';
import { freePort } from './free-port.mjs';

// `wrenn up` uses the default cgroup parent: another agent on it would kill our capsule as stale (and we its).
if (existsSync('/sys/fs/cgroup/memory/wrenn') || existsSync('/sys/fs/cgroup/wrenn')) {
  console.error('[smoke] a Wrenn agent already runs on this machine (cgroup parent "wrenn"): not starting a second');
  process.exit(1);
}

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-smoke-node-'));
const apiKey = `wrn_${randomBytes(16).toString('hex')}`;
const listen = `127.0.0.1:${await freePort()}`;
const up = spawn(process.execPath, ['packages/cli/bin/wrenn.js', 'up'], {
  env: {
    ...process.env,
    WRENN_DIR: dataDir,
    WRENN_LISTEN: listen,
    WRENN_API_KEY: apiKey,
    WRENN_WARM_POOL: '',
    WRENN_NET_WARM_POOL: '0',
    // Away from the default pool and from the test suites' slots (10.240-255).
    WRENN_NET_POOL: '10.238.0.0/24',
    WRENN_METADATA_PORT: '31268',
    WRENN_LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'inherit', 'pipe'],
});
let upLog = '';
let sbx;
let failed = false;
try {
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('wrenn up did not start within 300 s')), 300_000);
    up.stderr.on('data', (d) => {
      upLog += d;
      process.stderr.write(d);
      if (upLog.includes('Wrenn is running at')) {
        clearTimeout(timer);
        resolve();
      }
    });
    up.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`wrenn up exited (${code ?? signal}) before it was running`));
    });
  });
  const url = `http://${listen}`;
  const opts = { apiKey, apiUrl: url, sandboxUrl: url, domain: 'localhost' };
  const t0 = performance.now();
  sbx = await Sandbox.create('minimal', opts);
  const hello = await sbx.commands.run('echo hello from $(uname -s)');
  const ms = Math.round(performance.now() - t0);
  if (hello.exitCode !== 0 || hello.stdout.trim() !== 'hello from Linux')
    throw new Error(`the command in the capsule answered ${JSON.stringify(hello)}`);
  // envd runs on the node bound in at /opt/wrenn/runtime (the agent's own): ask that one its version.
  const rt = '/opt/wrenn/runtime';
  const v = await sbx.commands.run(`${rt}/lib/ld-linux-x86-64.so.2 --library-path ${rt}/lib ${rt}/bin/node --version`);
  if (v.stdout.trim() !== process.version)
    throw new Error(`the capsule's node is ${v.stdout.trim() || v.stderr.trim()}, not ${process.version}`);
  console.log(
    `[smoke] e2b SDK: capsule ${sbx.sandboxId} created and ran a command in ${ms} ms; its envd node is ${process.version}`,
  );
} catch (err) {
  failed = true;
  console.error(`[smoke] FAILED: ${err instanceof Error ? err.message : err}`);
} finally {
  await sbx?.kill().catch((err) => console.error(`[smoke] kill failed: ${err}`));
  if (up.exitCode === null && up.signalCode === null) {
    const exited = once(up, 'exit');
    up.kill('SIGTERM');
    const timer = setTimeout(() => up.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dataDir, { recursive: true, force: true });
  if (existsSync('/sys/fs/cgroup/memory/wrenn')) {
    console.error('[smoke] FAILED: wrenn up left its cgroup parent behind');
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
