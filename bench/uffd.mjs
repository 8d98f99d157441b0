#!/usr/bin/env node
// UFFD restore benchmark (prints JSON): page faults served per second from a chain of diff
// generations through the header (a child process registers memory and hands over the uffd as
// Firecracker does, then reads all of it), against reading the same pages with plain reads from
// the same generation files in this process. Run after `npm run build` (needs userfaultfd: root).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addGeneration,
  generationFile,
  generationFiles,
  readHeader,
} from '../packages/host-agent/dist/src/snapshot/index.js';
import { startUffdHandler, VMM_SIDE_SCRIPT } from '../packages/native/dist/src/index.js';

const MIB = Number(process.env.BENCH_MIB ?? 256);
const DIFFS = Number(process.env.BENCH_DIFFS ?? 5);
const PAGE = 4096;
const size = MIB * 1024 * 1024;
const blocks = size / PAGE;
const dir = mkdtempSync(join(tmpdir(), 'wrenn-bench-uffd-'));
try {
  writeFileSync(generationFile(dir, 'full0'), randomBytes(size));
  await addGeneration(dir, 'full0', 'full');
  for (let d = 1; d <= DIFFS; d++) {
    const fd = openSync(generationFile(dir, `diff${d}`), 'w');
    ftruncateSync(fd, size);
    const page = randomBytes(PAGE);
    for (let b = d; b < blocks; b += 7 + d) writeSync(fd, page, 0, PAGE, b * PAGE);
    closeSync(fd);
    await addGeneration(dir, `diff${d}`, 'diff');
  }
  const h = await readHeader(dir);
  const files = generationFiles(dir, h);
  const socketPath = join(dir, 'uffd.sock');
  const handler = startUffdHandler({ socketPath, blockSize: h.blockSize, blockGen: h.blocks, files });
  while (!existsSync(socketPath)) await new Promise((r) => setTimeout(r, 5));
  const out = join(dir, 'restored.bin');
  const child = JSON.parse(
    execFileSync(process.execPath, [VMM_SIDE_SCRIPT, socketPath, String(size), out, '2']).toString(),
  );
  const stats = await handler.stop();
  // The same pages with plain reads (page cache warm from the restore, like the handler's mappings).
  const fds = files.map((f) => openSync(f, 'r'));
  const buf = Buffer.alloc(PAGE);
  const t0 = process.hrtime.bigint();
  for (let b = 0; b < blocks; b++) {
    const g = h.blocks[b];
    if (g >= 0) readSync(fds[g], buf, 0, PAGE, b * PAGE);
  }
  const readNs = Number(process.hrtime.bigint() - t0);
  for (const fd of fds) closeSync(fd);
  console.log(
    JSON.stringify(
      {
        bench: 'uffd-restore',
        memory_mib: MIB,
        generations: h.generations.length,
        faults: stats.faults,
        uffd_faults_per_sec: Math.round(stats.faults / (child.readNs / 1e9)),
        uffd_mib_per_sec: Math.round(MIB / (child.readNs / 1e9)),
        plain_reads_pages_per_sec: Math.round(blocks / (readNs / 1e9)),
        plain_reads_mib_per_sec: Math.round(MIB / (readNs / 1e9)),
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
