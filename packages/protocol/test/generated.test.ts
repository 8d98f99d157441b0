import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { create, fromBinary, process as proc, toBinary } from '../src/index.js';

const root = resolve(import.meta.dirname, '../../../..');

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

test('generated protocol code is up to date with proto/', () => {
  const out = mkdtempSync(join(tmpdir(), 'wrenn-gen-check-'));
  try {
    execFileSync('node', [join(root, 'scripts/generate.mjs'), '--out', out], { cwd: root, stdio: 'pipe' });
    const committed = join(root, 'packages/protocol/src/gen');
    const fresh = listFiles(out)
      .map((f) => relative(out, f))
      .sort();
    const have = listFiles(committed)
      .map((f) => relative(committed, f))
      .sort();
    assert.deepEqual(have, fresh, 'the set of generated files differs: run `npm run generate`');
    for (const f of fresh) {
      assert.equal(
        readFileSync(join(committed, f), 'utf8'),
        readFileSync(join(out, f), 'utf8'),
        `${f} is stale: run \`npm run generate\``,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('process.StartRequest keeps the envd wire numbering', () => {
  const msg = create(proc.StartRequestSchema, { process: { cmd: 'echo', args: ['hi'] }, tag: 't', stdin: false });
  const bytes = toBinary(proc.StartRequestSchema, msg);
  // field 1 (process) length-delimited = tag byte 0x0a; field 3 (tag) = 0x1a; field 4 (stdin) varint = 0x20
  assert.equal(bytes[0], 0x0a);
  assert.ok(bytes.includes(0x1a) && bytes.includes(0x20));
  assert.equal(fromBinary(proc.StartRequestSchema, bytes).process?.cmd, 'echo');
});
