#!/usr/bin/env node
// Keeps each workspace package behind its front door: an `exports` map lists every entry point by
// name (no "*" patterns), each entry point built from src/ has its source file, and no file of one
// package reaches into another except through those names (nor by a relative path across package
// folders). Files of a package may import their own package's internals; scripts/ and bench/ are
// held to the package names too. A TypeScript package built by the root `tsc -b` may only import
// the workspace packages its tsconfig references (directly or through them): tsc builds the others
// later, so a fresh clone's first build would fail even though a second one passes. `node scripts/check-package-boundaries.mjs [--root DIR]`: prints
// each breach and exits 1 if there is any.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'build', '.git']);
// `from 'x'`, `import 'x'`, `import('x')`, `require('x')`, `export … from 'x'`.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])([^'"\n]+)\1/g;

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return SKIP_DIRS.has(name) ? [] : walk(p);
    return SOURCE.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The workspace packages under <root>/packages: name, folder and exports map. */
function readPackages(root) {
  const dir = join(root, 'packages');
  return readdirSync(dir)
    .filter((d) => existsSync(join(dir, d, 'package.json')))
    .map((d) => {
      const manifest = JSON.parse(readFileSync(join(dir, d, 'package.json'), 'utf8'));
      return { name: manifest.name, dir: join(dir, d), exports: manifest.exports };
    });
}

/** The folders a tsconfig.json references directly (none if it has no plain-JSON tsconfig). */
function references(dir) {
  const file = join(dir, 'tsconfig.json');
  if (!existsSync(file)) return [];
  try {
    return (JSON.parse(readFileSync(file, 'utf8')).references ?? []).map((r) => resolve(dir, r.path));
  } catch {
    return [];
  }
}

/** For each package the root `tsc -b` builds: every package folder built before it. */
function builtBefore(root, packages) {
  const built = new Set(references(root));
  const closure = (dir, seen = new Set()) => {
    for (const ref of references(dir)) if (!seen.has(ref)) closure(ref, seen.add(ref));
    return seen;
  };
  return new Map(packages.filter((p) => built.has(p.dir)).map((p) => [p, closure(p.dir)]));
}

/** Breaches of the exports map itself: patterns, and src-built entry points without a source file. */
function checkExportsMap(root, pkg) {
  const out = [];
  const where = relative(root, join(pkg.dir, 'package.json'));
  if (pkg.exports === undefined) return out; // such a package may not be imported at all (see below)
  if (typeof pkg.exports !== 'object' || pkg.exports === null || !('.' in pkg.exports)) {
    out.push(`${where}: "exports" must be an object with a "." front door`);
    return out;
  }
  for (const [key, target] of Object.entries(pkg.exports)) {
    if (key.includes('*') || JSON.stringify(target).includes('*')) {
      out.push(`${where}: exports "${key}" uses a "*" pattern; list each entry point by name`);
      continue;
    }
    // One entry point built from src/ (its "types" and "default" name the same source file).
    const built = targetFiles(target)
      .map((file) => /^\.\/dist\/(.+?)(?:\.d\.ts|\.js)$/.exec(file)?.[1])
      .filter((stem) => stem !== undefined);
    for (const stem of new Set(built)) {
      const sources = ['.ts', '.tsx', '.mts'].map((ext) => join(pkg.dir, `${stem}${ext}`));
      if (!sources.some((s) => existsSync(s)))
        out.push(`${where}: exports "${key}" is built from ${relative(root, sources[0])}, which does not exist`);
    }
  }
  return out;
}

function targetFiles(target) {
  if (typeof target === 'string') return [target];
  if (target && typeof target === 'object') return Object.values(target).flatMap(targetFiles);
  return [];
}

/** The package a file belongs to, if any. */
function ownerOf(file, packages) {
  return packages.find((p) => file === p.dir || file.startsWith(p.dir + sep));
}

function checkImports(root, packages, files) {
  const out = [];
  const before = builtBefore(root, packages);
  const byName = new Map(packages.map((p) => [p.name, p]));
  for (const file of files) {
    const owner = ownerOf(file, packages);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[2];
      const line = text.slice(0, m.index).split('\n').length;
      const at = `${relative(root, file)}:${line}`;
      if (spec.startsWith('.')) {
        const target = ownerOf(resolve(dirname(file), spec), packages);
        if (owner && target && target !== owner)
          out.push(`${at}: "${spec}" reaches into ${target.name} by path; import it by name`);
        continue;
      }
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      const pkg = byName.get(name);
      if (!pkg || pkg === owner) continue;
      if (owner && before.has(owner) && /\.(ts|tsx|mts|cts)$/.test(file) && !before.get(owner).has(pkg.dir))
        out.push(`${at}: ${owner.name} imports ${name}, which tsc -b builds after it (not in its tsconfig references)`);
      const subpath = spec === name ? '.' : `.${spec.slice(name.length)}`;
      if (pkg.exports === undefined)
        out.push(`${at}: ${name} has no "exports" front door, so "${spec}" is an internal`);
      else if (!Object.hasOwn(pkg.exports, subpath))
        out.push(
          `${at}: "${spec}" is not an entry point of ${name} (it offers ${Object.keys(pkg.exports).join(', ')})`,
        );
    }
  }
  return out;
}

export function checkPackageBoundaries(root) {
  const packages = readPackages(root);
  const files = [...packages.flatMap((p) => walk(p.dir)), ...walk(join(root, 'scripts')), ...walk(join(root, 'bench'))];
  return [...packages.flatMap((p) => checkExportsMap(root, p)), ...checkImports(root, packages, files)];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--root');
  const root = resolve(i > 0 ? process.argv[i + 1] : join(dirname(fileURLToPath(import.meta.url)), '..'));
  const breaches = checkPackageBoundaries(root);
  for (const b of breaches) console.error(b);
  if (breaches.length > 0) {
    console.error(`${breaches.length} package boundary breach(es)`);
    process.exit(1);
  }
  console.log('package boundaries: every import goes through a named entry point');
}
