#!/usr/bin/env node
// Regenerates packages/protocol/src/gen from proto/ with buf + protoc-gen-es.
// `--out DIR` writes elsewhere (the staleness test compares the two).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outIdx = process.argv.indexOf('--out');
const bin = join(root, 'node_modules', '.bin');
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
let template = join(root, 'buf.gen.yaml');
let tmp;
if (outIdx > 0) {
  const out = resolve(process.argv[outIdx + 1]);
  tmp = mkdtempSync(join(tmpdir(), 'wrenn-gen-'));
  template = join(tmp, 'buf.gen.yaml');
  writeFileSync(template, readFileSync(join(root, 'buf.gen.yaml'), 'utf8').replace('packages/protocol/src/gen', out));
}
execFileSync(join(bin, 'buf'), ['generate', '--template', template], { cwd: root, env, stdio: 'inherit' });
if (tmp) rmSync(tmp, { recursive: true, force: true });
