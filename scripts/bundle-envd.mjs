#!/usr/bin/env node
// Bundles envd into one ES module (packages/envd/dist/bundle/envd.mjs) so a capsule's envd loads one
// file instead of resolving hundreds of modules: capsule start time is mostly envd's start time.
// Native addons (node-pty, loaded on the first PTY; @napi-rs/xattr for file metadata) stay external
// and are copied next to the bundle, so a capsule needs only this folder and the node binary.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'packages/envd/dist/bundle');
const NATIVE = [
  { name: 'node-pty', dirs: ['node-pty'] },
  { name: '@napi-rs/xattr', dirs: ['@napi-rs/xattr', '@napi-rs/xattr-linux-x64-gnu'] },
];
// Only what node-pty needs at run time: its JS and the compiled addon.
const PARTS = { 'node-pty': ['package.json', 'lib', 'build/Release/pty.node', 'build/Release/spawn-helper'] };
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'node_modules'), { recursive: true });
await build({
  entryPoints: [join(root, 'packages/envd/dist/src/main.js')],
  outfile: join(out, 'envd.mjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  sourcemap: false,
  external: NATIVE.map((n) => n.name),
  logLevel: 'warning',
  // Some dependencies are CommonJS and call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
for (const { name, dirs } of NATIVE) {
  for (const dir of dirs) {
    for (const part of PARTS[dir] ?? ['']) {
      const from = join(root, 'node_modules', dir, part);
      if (existsSync(from)) cpSync(from, join(out, 'node_modules', dir, part), { recursive: true });
    }
  }
  if (!existsSync(join(out, 'node_modules', name, 'package.json'))) throw new Error(`${name} is not installed: run npm install`);
}
