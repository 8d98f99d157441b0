#!/usr/bin/env node
// Runs every compiled test file (packages/*/dist/test/**/*.test.js) with node's test runner.
// Arguments filter by substring of the path: `npm test -- envd`. The whole run (no filter) starts
// with `biome check` (format, imports, lint), which fails the run but does not stop the tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.js') ? [p] : [];
  });
}

const files = readdirSync(join(root, 'packages'))
  .flatMap((pkg) => walk(join(root, 'packages', pkg, 'dist', 'test')))
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found: did the build run? (`npm run build`)');
  process.exit(1);
}
let lintFailed = false;
if (filters.length === 0) {
  console.log('# biome check (format, imports, lint)');
  const lint = spawnSync(join(root, 'node_modules', '.bin', 'biome'), ['check', '.'], { cwd: root, stdio: 'inherit' });
  lintFailed = lint.status !== 0;
  if (lintFailed)
    console.error(
      '# biome check failed: `npx biome check --write .` fixes format and imports; lint findings are by hand',
    );
}
// Tests send traffic only to loopback and their own namespaces: a Docker Hub name that a test does
// not send to its own registry (an unknown FROM, say) goes to a closed loopback port, never out.
const env = { ...process.env, WRENN_REGISTRY_MIRROR: process.env.WRENN_REGISTRY_MIRROR ?? 'http://127.0.0.1:9' };
// One file at a time: the suites create real namespaces, cgroups and servers on fixed ports.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  cwd: root,
  stdio: 'inherit',
  env,
});
process.exit(lintFailed ? 1 : (r.status ?? 1));
