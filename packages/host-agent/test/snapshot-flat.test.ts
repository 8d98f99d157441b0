// A flat memory file (as QEMU maps guest RAM) against a generation chain, on real sparse files: a
// Full generation keeps zero blocks as holes, a Diff holds exactly the blocks that changed (found
// by comparison, including a block that became zero), and rebuilding the flat file from the chain
// gives back every byte, also after the chain collapsed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  addGeneration,
  collapse,
  generationFile,
  materializeChain,
  readHeader,
  sparseCopy,
  writeDiffAgainstChain,
} from '../src/snapshot/index.js';

const BLOCK = 4096;
const BLOCKS = 1024; // 4 MiB of "guest memory"
const SIZE = BLOCK * BLOCKS;

const diskBytes = async (p: string) => (await stat(p)).blocks * 512;

test('flat memory: Full keeps zero blocks as holes, Diff holds only changed blocks, rebuild gives every byte back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-snapflat-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Guest memory: the first quarter random, the rest zero (as a fresh guest's RAM mostly is).
  const memory = Buffer.alloc(SIZE);
  randomBytes(SIZE / 4).copy(memory);
  const flat = join(dir, 'memory');
  await writeFile(flat, memory);

  const full = generationFile(dir, 'full0');
  assert.equal(await sparseCopy(flat, full), SIZE / 4, 'only the non-zero blocks are written');
  assert.ok((await diskBytes(full)) <= SIZE / 4 + 64 * 1024, `zero blocks stay holes (${await diskBytes(full)} bytes)`);
  await addGeneration(dir, 'full0', 'full');

  // Unchanged memory: an empty diff.
  const none = await writeDiffAgainstChain(dir, flat, generationFile(dir, 'same'));
  assert.equal(none.changedBlocks, 0);
  await rm(generationFile(dir, 'same'));

  // A small change: block 3 rewritten, block 10 zeroed, block 700 (zero before) written.
  const changed = [3, 10, 700];
  randomBytes(BLOCK).copy(memory, 3 * BLOCK);
  memory.fill(0, 10 * BLOCK, 11 * BLOCK);
  randomBytes(BLOCK).copy(memory, 700 * BLOCK);
  await writeFile(flat, memory);
  const diffPath = generationFile(dir, 'diff1');
  const d = await writeDiffAgainstChain(dir, flat, diffPath);
  assert.equal(d.changedBlocks, changed.length, 'exactly the changed blocks, a zeroed one included');
  assert.equal(d.totalBlocks, BLOCKS);
  assert.equal((await stat(diffPath)).size, SIZE);
  assert.ok((await diskBytes(diffPath)) < (await diskBytes(full)) / 10, 'the diff is a small sparse file');
  const added = await addGeneration(dir, 'diff1', 'diff');
  assert.equal(added.blocks, changed.length);
  const h = await readHeader(dir);
  for (const b of changed) assert.equal(h.blocks[b], 1, `block ${b} comes from the diff`);
  assert.equal(h.blocks[4], 0);

  const rebuilt = join(dir, 'rebuilt');
  const m = await materializeChain(dir, rebuilt);
  assert.equal(m.size, SIZE);
  assert.ok((await readFile(rebuilt)).equals(memory), 'the rebuilt flat file has every byte');
  assert.ok((await diskBytes(rebuilt)) < SIZE / 2, 'the rebuilt file is sparse');

  await collapse(dir, 'collapsed');
  await rm(rebuilt);
  await materializeChain(dir, rebuilt);
  assert.ok((await readFile(rebuilt)).equals(memory), 'and after collapse too');

  await writeFile(join(dir, 'short'), Buffer.alloc(BLOCK));
  await assert.rejects(writeDiffAgainstChain(dir, join(dir, 'short'), generationFile(dir, 'bad')), /holds 4194304/);
});
