// Every package is entered by its front door: scripts/check-package-boundaries.mjs finds no
// import of another package's non-exported path and no "*" in an exports map in this repository,
// and it does find each kind of breach in a small tree made to have them.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// packages/cli/dist/test/<this file> -> the repository root.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const checker = join(root, 'scripts', 'check-package-boundaries.mjs');

function check(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [checker, '--root', dir], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function write(base: string, path: string, text: string): void {
  mkdirSync(dirname(join(base, path)), { recursive: true });
  writeFileSync(join(base, path), text);
}

test('no package of this repository imports another package past its exports', () => {
  const r = check(root);
  assert.equal(r.status, 0, r.out);
});

test('the check finds "*" exports, missing front doors, internal imports and paths across packages', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-boundaries-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const entry = (s: string) => ({ types: `./dist/src/${s}.d.ts`, default: `./dist/src/${s}.js` });
  write(dir, 'packages/low/package.json', JSON.stringify({ name: '@t/low', exports: { '.': entry('index') } }));
  write(dir, 'packages/low/src/index.ts', 'export const a = 1;\n');
  write(dir, 'packages/low/src/inner.ts', 'export const b = 2;\n');
  write(
    dir,
    'packages/open/package.json',
    JSON.stringify({ name: '@t/open', exports: { '.': entry('index'), './*': entry('*') } }),
  );
  write(dir, 'packages/bare/package.json', JSON.stringify({ name: '@t/bare' }));
  write(dir, 'packages/high/package.json', JSON.stringify({ name: '@t/high', exports: { '.': entry('index') } }));
  write(
    dir,
    'packages/high/src/index.ts',
    [
      "import { a } from '@t/low';",
      "import { b } from '@t/low/inner';",
      "export { c } from '../../low/src/inner.js';",
      "const lazy = () => import('@t/bare');",
      "import { d } from './own/internal.js';",
      '',
    ].join('\n'),
  );
  write(dir, 'packages/high/test/own.test.ts', "import { x } from '../src/deep/inside.js';\n");
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /packages\/open\/package\.json: exports "\.\/\*" uses a "\*" pattern/);
  assert.match(
    r.out,
    /packages\/open\/package\.json: exports "\." is built from packages\/open\/src\/index\.ts, which does not exist/,
  );
  assert.match(r.out, /packages\/high\/src\/index\.ts:2: "@t\/low\/inner" is not an entry point of @t\/low/);
  assert.match(
    r.out,
    /packages\/high\/src\/index\.ts:3: "\.\.\/\.\.\/low\/src\/inner\.js" reaches into @t\/low by path/,
  );
  assert.match(r.out, /packages\/high\/src\/index\.ts:4: @t\/bare has no "exports" front door/);
  assert.doesNotMatch(r.out, /index\.ts:1:|index\.ts:5:|own\.test\.ts/, 'front doors and own internals are allowed');
  assert.match(r.out, /5 package boundary breach/);
});

test('the check finds an import of a package that the root tsc -b builds later', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-boundaries-order-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pkg = (name: string, refs: string[]) => {
    write(dir, `packages/${name}/package.json`, JSON.stringify({ name: `@t/${name}`, exports: { '.': './x.js' } }));
    write(
      dir,
      `packages/${name}/tsconfig.json`,
      JSON.stringify({ references: refs.map((r) => ({ path: `../${r}` })) }),
    );
  };
  write(
    dir,
    'tsconfig.json',
    JSON.stringify({ references: ['base', 'mid', 'top'].map((p) => ({ path: `packages/${p}` })) }),
  );
  pkg('base', []);
  pkg('mid', ['base']);
  pkg('top', ['mid']);
  write(dir, 'packages/top/src/index.ts', "import { a } from '@t/base';\n"); // through mid: built before
  write(dir, 'packages/mid/test/uses-top.test.ts', "import { t } from '@t/top';\n"); // built after mid
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(
    r.out,
    /packages\/mid\/test\/uses-top\.test\.ts:1: @t\/mid imports @t\/top, which tsc -b builds after it/,
  );
  assert.doesNotMatch(r.out, /packages\/top\/src\/index\.ts/, 'a package referenced through another is built before');
  assert.match(r.out, /1 package boundary breach/);
});
