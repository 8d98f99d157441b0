// A scratch copy of this tree for another Node release, built by that node: used by the CI smoke
// subset (scripts/smoke-node-line.mjs) and by bench/node-lines.mjs, which must both run the tree a
// line would really run (tsc output, envd's bundle and its V8 code cache made by that node). The
// copy shares node_modules by hard links; only better-sqlite3, the one addon built against one node
// ABI (the others use N-API), gets its own build for that line, kept in
// /var/cache/wrenn-node/<version>/addons.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeLine } from '../node-line.mjs';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The environment a line's commands run in: its node first on PATH, no inherited NODE_OPTIONS. */
export function lineEnv(node) {
  const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}` };
  delete env.NODE_OPTIONS;
  return env;
}

/** better-sqlite3 compiled for this node's ABI, built once per (node, better-sqlite3) version. */
function betterSqliteFor(version, node, say) {
  const nodeDir = dirname(dirname(node));
  const pkg = join(repoRoot, 'node_modules/better-sqlite3');
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
      env: lineEnv(node),
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

/**
 * Copies this tree (tracked and new files, not ignored; node_modules and built addons hard-linked)
 * into a temp dir for `version`, with better-sqlite3 built for it. Returns { tree, node, env }; the
 * caller removes `tree`. With `build`, also runs tsc -b and envd's bundle (and code cache) there.
 */
export function lineTree(version, { build = false, say = () => {} } = {}) {
  const node = nodeLine(version);
  const env = lineEnv(node);
  const tree = mkdtempSync(join(tmpdir(), `wrenn-node${version}-`));
  try {
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: repoRoot,
    })
      .toString()
      .split('\0')
      .filter((f) => f && existsSync(join(repoRoot, f)));
    const tar = spawnSync('sh', ['-c', `tar -cf - --null -T - | tar -xf - -C '${tree}'`], {
      cwd: repoRoot,
      input: files.join('\0'),
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    if (tar.status !== 0) throw new Error('copying the tree failed');
    const linked = ['node_modules', 'packages/native/build', 'packages/dashboard/dist'];
    for (const p of readdirSync(join(repoRoot, 'packages'))) linked.push(join('packages', p, 'node_modules'));
    for (const p of linked.filter((p) => existsSync(join(repoRoot, p)))) {
      mkdirSync(dirname(join(tree, p)), { recursive: true });
      execFileSync('cp', ['-al', join(repoRoot, p), join(tree, p)]);
    }
    // Replace the hard link (never write through it into this tree's build) with this line's build.
    const binding = join(tree, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    rmSync(binding, { force: true });
    copyFileSync(betterSqliteFor(version, node, say), binding);
    if (build) buildLineTree({ tree, node, env }, say);
  } catch (err) {
    rmSync(tree, { recursive: true, force: true });
    throw err;
  }
  return { tree, node, env };
}

/** tsc -b, then envd's bundle and its V8 code cache, all by the line's own node. */
export function buildLineTree({ tree, node, env }, say = () => {}) {
  say('build: tsc -b, then envd bundle and code cache');
  for (const args of [['node_modules/typescript/bin/tsc', '-b'], ['scripts/bundle-envd.mjs']]) {
    const r = spawnSync(node, args, { cwd: tree, env, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status ?? r.signal})`);
  }
}
