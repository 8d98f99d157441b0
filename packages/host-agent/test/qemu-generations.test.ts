// The QEMU runtime's memory generations on real files, without a VM (the VM path is in
// qemu-runtime.test.ts): the RAM file of the first pause becomes a Full generation (renamed, zero
// blocks punched out), each later pause a Diff of only the changed blocks, the RAM file is removed
// each time, a resume's rebuild gives every byte back, and after 10 generations the chain
// collapses into one Full file that still rebuilds byte for byte.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { diskBytes, saveGeneration } from '../src/runtimes/qemu/memory-generations.js';
import { MAX_GENERATIONS, materializeChain, readHeader } from '../src/snapshot/index.js';

const BLOCK = 4096;
const SIZE = 8 * 1024 * 1024; // 8 MiB of "guest RAM"

test('qemu memory generations: Full, then Diffs of the changed blocks, RAM file removed, collapse after 10, every byte kept', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-qemugen-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const chainDir = join(dir, 'snapshot');
  await mkdir(chainDir);
  const ram = join(dir, 'memory');
  const memory = Buffer.alloc(SIZE);
  randomBytes(SIZE / 8).copy(memory); // 1 MiB in use, the rest zeros (written: QEMU's file is dense where touched)
  await writeFile(ram, memory);

  const full = await saveGeneration(chainDir, ram);
  assert.equal(full.kind, 'full');
  assert.ok(!existsSync(ram), 'the RAM file is gone (it became the generation file)');
  assert.ok(full.bytes < SIZE / 4, `zero blocks are holes: ${full.bytes} bytes on disk for ${SIZE}`);
  assert.equal(full.generations, 1);

  let collapsedSeen = false;
  let generations = 1;
  for (let round = 1; round <= MAX_GENERATIONS + 1; round++) {
    // Resume: the RAM file rebuilt from the chain must be the memory as paused.
    await materializeChain(chainDir, ram);
    assert.ok((await readFile(ram)).equals(memory), `round ${round}: the rebuilt RAM file has every byte`);
    // The guest changes a few blocks (one of them in formerly zero memory).
    const picks = [round, 100 + round, 1500 + round];
    for (const b of picks) randomBytes(BLOCK).copy(memory, b * BLOCK);
    await writeFile(ram, memory);
    const d = await saveGeneration(chainDir, ram);
    assert.equal(d.kind, 'diff');
    assert.equal(d.changedBlocks, picks.length, `round ${round}: exactly the changed blocks`);
    assert.ok(
      d.bytes < full.bytes / 10,
      `round ${round}: the diff (${d.bytes}) is far smaller than the full (${full.bytes})`,
    );
    assert.ok(!existsSync(ram), `round ${round}: the RAM file is removed`);
    generations++;
    if (d.collapsed) {
      collapsedSeen = true;
      generations = 1;
      const h = await readHeader(chainDir);
      assert.equal(h.generations.length, 1, 'collapsed into one Full file');
      const files = (await readdir(chainDir)).filter((f) => f.startsWith('memfile.') && !f.endsWith('.json'));
      assert.equal(files.length, 1, `only the collapsed file is left (${files.join(', ')})`);
    } else assert.equal(d.generations, generations);
  }
  assert.ok(collapsedSeen, `the chain collapsed after ${MAX_GENERATIONS} generations`);
  await materializeChain(chainDir, ram);
  assert.ok((await readFile(ram)).equals(memory), 'after the collapse the rebuilt RAM file has every byte');
  assert.ok((await diskBytes(ram)) < SIZE / 2, 'and is sparse');
});
