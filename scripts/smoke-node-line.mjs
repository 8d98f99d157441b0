#!/usr/bin/env node
// The smoke subset on another Node release (CI runs it for each line in .ci/node-lines after the
// whole suite on the machine's node): in a scratch copy of this tree with that node first on PATH
// (scripts/lib/node-line-tree.mjs), build (tsc, envd's bundle and its V8 code cache), run envd's
// tests, and take one capsule through the e2b SDK against `wrenn up` (whose capsules then run envd
// on that node too, since the runtime bound into them is the agent's own node). Removes the copy
// at the end.
// Usage (root, after `npm test` or `npm run build`): node scripts/smoke-node-line.mjs <version> [--keep]
// Like `npm test` it takes no lock itself: on a machine shared with other test runs, run it (or all
// of .ci/run) under `flock /tmp/wrenn-tests.lock` (a lock taken inside would wait on that one forever).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { buildLineTree, lineTree } from './lib/node-line-tree.mjs';

const version = process.argv[2];
const keep = process.argv.includes('--keep');
if (!version) {
  console.error('usage: node scripts/smoke-node-line.mjs <version> [--keep]');
  process.exit(2);
}
const say = (msg) => console.log(`[node ${version}] ${msg}`);

const t0 = Date.now();
const line = lineTree(version, { say });
const { tree, node, env } = line;
say(`smoke subset on ${node}`);

function run(args) {
  const r = spawnSync(node, args, { cwd: tree, env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status ?? r.signal})`);
}

try {
  buildLineTree(line, say);
  say('envd tests');
  run(['scripts/run-tests.mjs', 'packages/envd/']);
  say('one capsule through the e2b SDK against wrenn up');
  run(['scripts/lib/smoke-e2b-capsule.mjs']);
  say(`smoke subset passed in ${Math.round((Date.now() - t0) / 1000)} s`);
} catch (err) {
  say(`smoke subset FAILED: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
} finally {
  if (keep) say(`kept the tree at ${tree}`);
  else rmSync(tree, { recursive: true, force: true });
}
