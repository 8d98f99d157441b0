// The UFFD handler with a real userfaultfd: a child process registers memory and hands over the
// uffd exactly as Firecracker does (JSON regions + SCM_RIGHTS on a unix socket); every page it
// reads comes from the generation file the block map names, or zeros.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { native, parseFirecrackerMappings, startUffdHandler, VMM_SIDE_SCRIPT } from '../src/index.js';

const run = promisify(execFile);
const PAGE = 4096;

test('mappings: Firecracker JSON (page_size and the older page_size_kib) parsed and validated', () => {
  const r = parseFirecrackerMappings(
    '[{"base_host_virt_addr":140000000000000,"size":8192,"offset":0,"page_size":4096},{"base_host_virt_addr":140000000008192,"size":4096,"offset":8192,"page_size_kib":4}]',
  );
  assert.deepEqual(r[1], { base: 140000000008192, size: 4096, offset: 8192, pageSize: 4096 });
  assert.throws(() => parseFirecrackerMappings('[{"size":1}]'), /base is missing or invalid/);
  assert.throws(() => parseFirecrackerMappings('nope'), /not JSON/);
});

test('uffd: pages come back from a chain of generation files (and zeros where none has the block)', {
  timeout: 60_000,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-uffd-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const blocks = 256; // 1 MiB
  const size = blocks * PAGE;
  // gen0: full; gen1 and gen2: sparse diffs holding a few blocks at their memory offsets.
  const full = randomBytes(size);
  const gens = [full, Buffer.alloc(0), Buffer.alloc(0)];
  const blockGen = new Int32Array(blocks).fill(0);
  const files = [join(dir, 'memfile.g0'), join(dir, 'memfile.g1'), join(dir, 'memfile.g2')];
  await writeFile(files[0] as string, full);
  const expected = Buffer.from(full);
  for (const [g, picks] of [
    [1, [1, 2, 3, 100, 200]],
    [2, [2, 150, 255]],
  ] as const) {
    const fh = await open(files[g] as string, 'w');
    await fh.truncate(size);
    for (const b of picks) {
      const page = randomBytes(PAGE);
      await fh.write(page, 0, PAGE, b * PAGE);
      page.copy(expected, b * PAGE);
      blockGen[b] = g;
    }
    await fh.close();
    gens[g] = await readFile(files[g] as string);
  }
  for (const b of [10, 11]) {
    blockGen[b] = -1; // never written: zeros
    expected.fill(0, b * PAGE, (b + 1) * PAGE);
  }
  // A diff file is sparse: only its blocks hold data.
  const ranges = native().dataRanges(files[2] as string);
  assert.ok(
    ranges.length >= 1 && ranges.every(([s, e]) => e - s < size),
    `sparse diff (data ranges ${JSON.stringify(ranges)})`,
  );

  const socketPath = join(dir, 'uffd.sock');
  const handler = startUffdHandler({ socketPath, blockSize: PAGE, blockGen, files, prefetchPages: 1 });
  const out = join(dir, 'memory.out');
  // Wait until the handler listens: the child connects right away.
  for (let i = 0; i < 100; i++) {
    if (await readFile(socketPath).catch((e: NodeJS.ErrnoException) => e.code !== 'ENOENT')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const child = await run(process.execPath, [VMM_SIDE_SCRIPT, socketPath, String(size), out, '2']);
  const regions = await handler.connected;
  assert.equal(regions.length, 2);
  assert.equal(regions[1]?.offset, size / 2);
  const stats = await handler.stop();
  const got = await readFile(out);
  assert.equal(got.length, size);
  assert.ok(got.equals(expected), 'every page equals the newest generation that holds its block');
  assert.equal(stats.faults, blocks, 'each page faulted exactly once');
  assert.equal(stats.zeroPages, 2);
  assert.equal(stats.copiedBytes, (blocks - 2) * PAGE);
  console.log(`# uffd: ${stats.faults} faults served (${JSON.parse(child.stdout).readNs / 1e6} ms in the child)`);
});
