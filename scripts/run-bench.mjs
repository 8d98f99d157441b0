#!/usr/bin/env node
// `npm run bench`: builds (tsc -b), then runs every benchmark via bench/run-all.mjs and prints its JSON.
// Arguments are passed on (name filters): `npm run bench -- envd-idle`.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const build = spawnSync(process.execPath, [tsc, '-b'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (build.status !== 0) {
  console.error('run-bench: the build failed (tsc -b); fix it and run again');
  process.exit(build.status ?? 1);
}
const r = spawnSync(process.execPath, [join(root, 'bench', 'run-all.mjs'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
