#!/usr/bin/env node
// The smoke subset on another Node release (CI runs it for each line in .ci/node-lines after the
// whole suite on the machine's node): in a scratch copy of this tree, with that node first on PATH,
// build (tsc, envd's bundle and its V8 code cache), run envd's tests, and take one capsule through
// the e2b SDK against `wrenn up` (whose capsules then run envd on that node too, since the runtime
// bound into them is the agent's own node). The copy shares node_modules by hard links; only
// better-sqlite3, the one addon built against one node ABI (the others use N-API), gets its own
// build for that line, kept in /var/cache/wrenn-node/<version>/addons. Removes the copy at the end.
// Usage (root, after `npm test` or `npm run build`): node scripts/smoke-node-line.mjs <version> [--keep]
// Like `npm test` it takes no lock itself: on a machine shared with other test runs, run it (or all
// of .ci/run) under `flock /tmp/wrenn-tests.lock` (a lock taken inside would wait on that one forever).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeLine } from './node-line.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const version = process.argv[2];
const keep = process.argv.includes('--keep');
if (!version) {
  console.error('usage: node scripts/smoke-node-line.mjs <version> [--keep]');
  process.exit(2);
}
const say = (msg) => console.log(`[node ${version}] ${msg}`);

const node = nodeLine(version);
const nodeDir = dirname(dirname(node));
const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}` };
delete env.NODE_OPTIONS;

function run(cmd, args, cwd, opts = {}) {
  const r = spawnSync(cmd, args, { cwd, env, stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
}

/** better-sqlite3 compiled for this node's ABI, built once per (node, better-sqlite3) version. */
function betterSqliteFor() {
  const pkg = join(root, 'node_modules/better-sqlite3');
  const { version: bsVersion } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  const cached = join(nodeDir, 'addons', `better-sqlite3-${bsVersion}.node`);
  if (existsSync(cached)) return cached;
  // node-gyp ships with npm (the linux-x64 node package carries no npm): the one next to this node.
  const gyp = join(dirname(dirname(process.execPath)), 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  if (!existsSync(gyp)) throw new Error(`node-gyp not found at ${gyp}`);
  const work = mkdtempSync(join(tmpdir(), 'wrenn-bsqlite-'));
  try {
    cpSync(pkg, work, { recursive: true, filter: (src) => !src.startsWith(join(pkg, 'build')) });
    say(`building better-sqlite3 ${bsVersion} against node ${version}'s headers (once)`);
    // Compiler output only when the build fails (sqlite's warnings are many).
    const r = spawnSync(node, [gyp, 'rebuild', '--release', `--nodedir=${nodeDir}`], {
      cwd: work,
      env,
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    if (r.status !== 0) throw new Error(`building better-sqlite3 failed:\n${r.stdout}\n${r.stderr}`);
    mkdirSync(dirname(cached), { recursive: true });
    copyFileSync(join(work, 'build/Release/better_sqlite3.node'), cached);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return cached;
}

/** The tree's files (tracked and new, not ignored) copied; node_modules and built addons hard-linked. */
function scratchTree() {
  const tree = mkdtempSync(join(tmpdir(), `wrenn-node${version}-`));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root })
    .toString()
    .split('\0')
    .filter((f) => f && existsSync(join(root, f)));
  const tar = spawnSync('sh', ['-c', `tar -cf - --null -T - | tar -xf - -C '${tree}'`], {
    cwd: root,
    input: files.join('\0'),
    stdio: ['pipe', 'inherit', 'inherit'],
  });
  if (tar.status !== 0) throw new Error('copying the tree failed');
  const linked = ['node_modules', 'packages/native/build', 'packages/dashboard/dist'];
  for (const p of readdirSync(join(root, 'packages'))) linked.push(join('packages', p, 'node_modules'));
  for (const p of linked.filter((p) => existsSync(join(root, p)))) {
    mkdirSync(dirname(join(tree, p)), { recursive: true });
    execFileSync('cp', ['-al', join(root, p), join(tree, p)]);
  }
  // Replace the hard link (never write through it into this tree's build) with this line's build.
  const binding = join(tree, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  rmSync(binding, { force: true });
  copyFileSync(betterSqliteFor(), binding);
  return tree;
}

const t0 = Date.now();
say(`smoke subset on ${node}`);
const tree = scratchTree();
try {
  say('build: tsc -b, then envd bundle and code cache');
  run(node, ['node_modules/typescript/bin/tsc', '-b'], tree);
  run(node, ['scripts/bundle-envd.mjs'], tree);
  say('envd tests');
  run(node, ['scripts/run-tests.mjs', 'packages/envd/'], tree);
  say('one capsule through the e2b SDK against wrenn up');
  run(node, ['scripts/lib/smoke-e2b-capsule.mjs'], tree);
  say(`smoke subset passed in ${Math.round((Date.now() - t0) / 1000)} s`);
} catch (err) {
  say(`smoke subset FAILED: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
} finally {
  if (keep) say(`kept the tree at ${tree}`);
  else rmSync(tree, { recursive: true, force: true });
}
