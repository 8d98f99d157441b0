// ARCHITECTURE.md stays true as code moves: every path it names exists, every function it names
// is declared in the file it names, and its package table matches the package.json files (each
// package listed, its @wrenn dependencies as stated, all of them above it in the table) and the
// code (a package's src imports no @wrenn package outside its row).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { referencesOf, staleReferences } from './doc-references.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const doc = readFileSync(join(root, 'ARCHITECTURE.md'), 'utf8');

test('every path and function ARCHITECTURE.md names is in the tree', () => {
  const refs = referencesOf(doc);
  // The document is a map of the code: it must name a good number of files and functions.
  assert.ok(refs.filter((r) => r.path).length >= 40, `only ${refs.filter((r) => r.path).length} paths found`);
  assert.ok(refs.filter((r) => r.file).length >= 40, `only ${refs.filter((r) => r.file).length} bound functions found`);
  assert.deepEqual(staleReferences(doc, root), [], 'ARCHITECTURE.md names what is not there: fix the document');
});

/** The @wrenn packages a package's own sources (src/, not its tests) import. */
function wrennImportsOf(dir: string): string[] {
  const found = new Set<string>();
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.tsx?$/.test(n) && !n.endsWith('.d.ts'))
        for (const m of readFileSync(p, 'utf8').matchAll(/(?:from|import\()\s*'@wrenn\/([a-z-]+)/g))
          found.add(m[1] ?? '');
    }
  };
  walk(join(root, dir, 'src'));
  return [...found].sort();
}

interface PackageRow {
  dir: string;
  dependsOn: string[];
}

/** The rows of the table under "## Packages": `packages/x` | deps (comma-separated, or —) | owns. */
function packageRows(markdown: string): PackageRow[] {
  const section = markdown.split(/^## Packages$/m)[1]?.split(/^## /m)[0] ?? '';
  return section
    .split('\n')
    .filter((l) => /^\|\s*`packages\//.test(l))
    .map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      const dir = (cells[1] ?? '').replace(/`/g, '');
      const deps = (cells[2] ?? '').replace(/`/g, '');
      return {
        dir,
        dependsOn: deps === '—' ? [] : deps.split(',').map((d) => d.trim()),
      };
    });
}

test("ARCHITECTURE.md's package table is the packages and their one-way dependencies", () => {
  const rows = packageRows(doc);
  const onDisk = readdirSync(join(root, 'packages'))
    .filter((d) => existsSync(join(root, 'packages', d, 'package.json')))
    .map((d) => `packages/${d}`)
    .sort();
  assert.deepEqual(rows.map((r) => r.dir).sort(), onDisk, 'every package has exactly one row');
  rows.forEach((row, i) => {
    const pkg = JSON.parse(readFileSync(join(root, row.dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    const actual = Object.keys(pkg.dependencies ?? {})
      .filter((n) => n.startsWith('@wrenn/'))
      .map((n) => n.slice('@wrenn/'.length))
      .sort();
    assert.deepEqual([...row.dependsOn].sort(), actual, `${row.dir}: "depends on" differs from its package.json`);
    const self = row.dir.slice('packages/'.length);
    const outside = wrennImportsOf(row.dir).filter((n) => n !== self && !actual.includes(n));
    assert.deepEqual(outside, [], `${row.dir}/src imports @wrenn packages its package.json does not depend on`);
    const above = new Set(rows.slice(0, i).map((r) => r.dir.slice('packages/'.length)));
    for (const dep of actual) assert.ok(above.has(dep), `${row.dir} depends on ${dep}, which is not above it`);
  });
});

test('the reference checker fails on a missing path, a missing function and a wrong owner', () => {
  const fake = [
    '1. `packages/control-plane/src/services/capsules/lifecycle.ts` `destroyCapsule` → `pauseCapsule`',
    '2. `packages/control-plane/src/no-such-file.ts` and `packages/no-such-dir/`',
    '3. `packages/control-plane/src/services/capsules/lifecycle.ts` `noSuchFunction`',
    '4. `packages/control-plane/src/agents/pool.ts` `AgentPool.client`, `AgentPool.noSuchMethod`',
    '5. free: `AgentPool` and `neverDeclaredAnywhere` (`running` is just a word)',
    '6. `packages/native/cpp/relay.cc` `Add`, `NoSuchCall`',
  ].join('\n');
  const problems = staleReferences(fake, root);
  assert.deepEqual(problems, [
    'line 2: packages/control-plane/src/no-such-file.ts does not exist',
    'line 2: packages/no-such-dir does not exist',
    'line 3: noSuchFunction is not declared in packages/control-plane/src/services/capsules/lifecycle.ts',
    'line 4: AgentPool.noSuchMethod is not declared in packages/control-plane/src/agents/pool.ts',
    'line 5: neverDeclaredAnywhere is not declared in any file the document names',
    'line 6: NoSuchCall is not declared in packages/native/cpp/relay.cc',
  ]);
});
