// Memory snapshot generations for real: a Full file, then Diff files (sparse, dirty blocks at their
// offsets, as Firecracker writes them); the header maps each block to its newest generation, a real
// userfaultfd restore through @wrenn/native serves exactly those bytes, and after 10 generations
// the chain collapses into one Full file that keeps every byte.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { startUffdHandler, VMM_SIDE_SCRIPT } from '@wrenn/native';
import { addGeneration, generationFile, generationFiles, MAX_GENERATIONS, readHeader } from '../src/snapshot/index.js';

const run = promisify(execFile);
const BLOCK = 4096;
const BLOCKS = 512; // 2 MiB of "guest memory"
const SIZE = BLOCK * BLOCKS;

async function writeDiff(dir: string, buildId: string, memory: Buffer, picks: number[]): Promise<void> {
  const fh = await open(generationFile(dir, buildId), 'w');
  await fh.truncate(SIZE);
  for (const b of picks) {
    const page = randomBytes(BLOCK);
    page.copy(memory, b * BLOCK);
    await fh.write(page, 0, BLOCK, b * BLOCK);
  }
  await fh.close();
}

async function restoreThroughUffd(dir: string): Promise<Buffer> {
  const h = await readHeader(dir);
  const socketPath = join(dir, 'uffd.sock');
  const handler = startUffdHandler({
    socketPath,
    blockSize: h.blockSize,
    blockGen: h.blocks,
    files: generationFiles(dir, h),
  });
  for (let i = 0; i < 200; i++) {
    if (
      await access(socketPath).then(
        () => true,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const out = join(dir, 'restored.bin');
  await run(process.execPath, [VMM_SIDE_SCRIPT, socketPath, String(SIZE), out, '2']);
  const stats = await handler.stop();
  // Prefetch (default 16 pages per fault, within one generation) fills every page exactly once.
  assert.equal(stats.copiedBytes, SIZE);
  assert.ok(stats.faults < BLOCKS && stats.faults >= BLOCKS / 16, `${stats.faults} faults for ${BLOCKS} pages`);
  const mem = await readFile(out);
  await rm(out);
  return mem;
}

test('snapshot chain: diffs through the header, UFFD restore, collapse after 10 generations keeps every byte', {
  timeout: 120_000,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-snapchain-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const memory = randomBytes(SIZE);
  await writeFile(generationFile(dir, 'full0'), memory);
  const first = await addGeneration(dir, 'full0', 'full');
  assert.equal(first.blocks, BLOCKS);

  // Diff 1 rewrites blocks 0-9; diff 2 rewrites exactly the same blocks: generation 1 is no longer
  // referenced and its file goes.
  await writeDiff(dir, 'diff1', memory, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal((await addGeneration(dir, 'diff1', 'diff')).blocks, 10);
  await writeDiff(dir, 'diff2', memory, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const second = await addGeneration(dir, 'diff2', 'diff');
  assert.deepEqual(second.header.generations, ['full0', 'diff2'], 'an unreferenced generation is dropped');
  assert.ok(!(await readdir(dir)).includes('memfile.diff1'));

  for (let i = 3; i <= 5; i++) await addGenerationWith(dir, `diff${i}`, memory, [i * 50, i * 50 + 1, 500 + i]);
  const h = await readHeader(dir);
  assert.equal(h.generations.length, 5);
  assert.equal(h.blocks[150], 2, 'block 150 comes from diff3 (generation 2)');
  assert.ok(
    (await restoreThroughUffd(dir)).equals(memory),
    'UFFD restore from the chain gives the newest bytes of every block',
  );

  let collapsed = false;
  let n = 6;
  while (!collapsed) {
    const r = await addGenerationWith(dir, `diff${n}`, memory, [(n * 37) % BLOCKS, (n * 91) % BLOCKS]);
    collapsed = r;
    n++;
    assert.ok(n < 20, 'the chain collapses');
  }
  const after = await readHeader(dir);
  console.log(`# collapsed after ${MAX_GENERATIONS} generations into ${after.generations[0]}`);
  assert.equal(after.generations.length, 1);
  const files = (await readdir(dir)).filter((f) => f.startsWith('memfile.') && !f.endsWith('.json'));
  assert.deepEqual(files, [`memfile.${after.generations[0]}`], 'only the collapsed Full file remains');
  assert.ok(
    (await readFile(generationFile(dir, after.generations[0] as string))).equals(memory),
    'collapse keeps every byte',
  );
  assert.ok((await restoreThroughUffd(dir)).equals(memory), 'and a UFFD restore from it too');
});

async function addGenerationWith(dir: string, id: string, memory: Buffer, picks: number[]): Promise<boolean> {
  await writeDiff(dir, id, memory, picks);
  return (await addGeneration(dir, id, 'diff')).collapsed;
}
