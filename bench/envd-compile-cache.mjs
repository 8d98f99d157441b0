#!/usr/bin/env node
// Does node's own module compile cache (Node >= 22: module.enableCompileCache) start envd faster
// than the V8 code cache start.cjs loads (made after a warm-up at build time)? Makes a copy of the
// built bundle whose start file loads envd.cjs under the compile cache, primes that cache with the
// same kind of warm-up (health, /init, a command), then runs bench/envd-startup.mjs on both
// bundles interleaved. Prints envd-startup's JSON. Usage: node bench/envd-compile-cache.mjs [--runs 20]
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envdListening } from '../scripts/lib/envd-listening.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'packages/envd/dist/bundle');
const runs = process.argv.includes('--runs') ? process.argv[process.argv.indexOf('--runs') + 1] : '20';
if (!('enableCompileCache' in (await import('node:module')).default)) {
  console.log(JSON.stringify({ node: process.version, skipped: 'this node has no module.enableCompileCache' }));
  process.exit(0);
}
const variant = mkdtempSync(join(tmpdir(), 'wrenn-envd-compile-cache-'));
try {
  cpSync(bundle, variant, { recursive: true });
  // The same builtins and V8 flags as the real start file, which bundle-envd.mjs filled in.
  const real = readFileSync(join(bundle, 'start.cjs'), 'utf8');
  const builtins = /const BUILTINS = (\[.*\]);/.exec(real)?.[1];
  const flags = /const FLAGS = (".*");/.exec(real)?.[1];
  if (!builtins || !flags) throw new Error('start.cjs has no filled-in BUILTINS/FLAGS: run scripts/bundle-envd.mjs');
  const start = readFileSync(join(root, 'bench/lib/compile-cache-start.cjs'), 'utf8')
    .replace('const BUILTINS = [];', `const BUILTINS = ${builtins};`)
    .replace("const FLAGS = '';", `const FLAGS = ${flags};`);
  writeFileSync(join(variant, 'start-compile-cache.cjs'), start);
  await prime(join(variant, 'start-compile-cache.cjs'));
  const files = readdirSync(join(variant, 'compile-cache'), { recursive: true });
  if (files.length === 0) throw new Error('the compile cache stayed empty');
  const out = execFileSync(
    process.execPath,
    [
      join(root, 'bench/envd-startup.mjs'),
      '--runs',
      runs,
      '--bundle',
      join(variant, 'start.cjs'),
      '--bundle',
      join(variant, 'start-compile-cache.cjs'),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  process.stdout.write(out);
} finally {
  rmSync(variant, { recursive: true, force: true });
}

/** Runs the variant once on loopback, warms it up like bundle-envd.mjs does, and has it write its cache. */
async function prime(startFile) {
  const child = spawn(process.execPath, [startFile, '--port', '0', '--host', '127.0.0.1'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      WRENN_ENVD_PRIME_COMPILE_CACHE: '1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const listening = envdListening(child);
  try {
    const port = await listening.port;
    const base = `http://127.0.0.1:${port}`;
    await (await fetch(`${base}/health`)).arrayBuffer();
    await (
      await fetch(`${base}/init`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    ).arrayBuffer();
    const body = Buffer.from(JSON.stringify({ process: { cmd: '/bin/true', args: [] } }));
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
    envelope.writeUInt32BE(body.length, 1);
    for (const type of ['application/connect+json']) {
      const res = await fetch(`${base}/process.Process/Start`, {
        method: 'POST',
        headers: { 'content-type': type, 'connect-protocol-version': '1' },
        body: envelope,
      });
      if (!(await res.text()).includes('"end"')) throw new Error('priming: Start had no end event');
    }
    const exited = once(child, 'exit');
    child.kill('SIGUSR2');
    await exited;
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  if (!existsSync(join(dirname(startFile), 'compile-cache')))
    throw new Error(`no compile cache written:\n${listening.stderr()}`);
}
