// Adding snapshot generations to a header and collapsing the chain into one Full file.

import { open, rm, stat } from 'node:fs/promises';
import { native } from '@wrenn/native';
import {
  emptyHeader,
  generationFile,
  MAX_GENERATIONS,
  type MemoryHeader,
  newBuildId,
  readHeader,
  writeHeader,
} from './header.js';

export interface AddGenerationResult {
  header: MemoryHeader;
  /** Blocks this generation provided. */
  blocks: number;
  /** true when the chain was collapsed into one Full file afterwards. */
  collapsed: boolean;
}

/**
 * Records memfile.<buildId> (already written by the VMM) as the newest generation. A Full
 * snapshot supersedes every earlier generation (their files are removed); a Diff provides the
 * blocks its sparse file has data for.
 */
export async function addGeneration(
  dir: string,
  buildId: string,
  kind: 'full' | 'diff',
  opts: { size?: number; blockSize?: number; maxGenerations?: number } = {},
): Promise<AddGenerationResult> {
  const file = generationFile(dir, buildId);
  const fileSize = (await stat(file)).size;
  if (kind === 'full') {
    const old = await readHeader(dir).catch(() => undefined);
    const h = emptyHeader(opts.size ?? fileSize, opts.blockSize ?? old?.blockSize);
    h.generations = [buildId];
    h.blocks.fill(0);
    await writeHeader(dir, h);
    for (const b of old?.generations ?? []) if (b !== buildId) await rm(generationFile(dir, b), { force: true });
    return { header: h, blocks: h.blocks.length, collapsed: false };
  }
  const h = await readHeader(dir).catch((err: Error) => {
    throw new Error(`a Diff snapshot needs an earlier Full one in ${dir}: ${err.message}`);
  });
  if (fileSize > h.size) throw new Error(`diff ${file} (${fileSize} bytes) is larger than the memory (${h.size})`);
  const gen = h.generations.length;
  h.generations.push(buildId);
  let blocks = 0;
  for (const [start, end] of native().dataRanges(file)) {
    for (let b = Math.floor(start / h.blockSize); b * h.blockSize < end && b < h.blocks.length; b++) {
      if (h.blocks[b] !== gen) blocks++;
      h.blocks[b] = gen;
    }
  }
  await pruneUnreferenced(dir, h);
  await writeHeader(dir, h);
  if (h.generations.length > (opts.maxGenerations ?? MAX_GENERATIONS)) {
    return { header: await collapse(dir), blocks, collapsed: true };
  }
  return { header: h, blocks, collapsed: false };
}

/** Drops generations no block points at any more (their files too), renumbering the rest. */
async function pruneUnreferenced(dir: string, h: MemoryHeader): Promise<void> {
  const used = new Set(h.blocks);
  const keep = h.generations.map((_, i) => used.has(i));
  if (keep.every(Boolean)) return;
  const renumber = new Int32Array(h.generations.length);
  let next = 0;
  keep.forEach((k, i) => {
    renumber[i] = k ? next++ : -1;
  });
  const removed = h.generations.filter((_, i) => !keep[i]);
  h.generations = h.generations.filter((_, i) => keep[i]);
  for (let b = 0; b < h.blocks.length; b++) {
    const g = h.blocks[b] as number;
    if (g >= 0) h.blocks[b] = renumber[g] as number;
  }
  for (const b of removed) await rm(generationFile(dir, b), { force: true });
}

/** Copies every block from the generation that holds it into one new Full file; removes the old files. */
export async function collapse(dir: string, buildId = newBuildId()): Promise<MemoryHeader> {
  const h = await readHeader(dir);
  const outPath = generationFile(dir, buildId);
  const out = await open(outPath, 'w');
  const inputs = await Promise.all(h.generations.map((b) => open(generationFile(dir, b), 'r')));
  const buf = Buffer.alloc(h.blockSize);
  try {
    await out.truncate(h.size); // sparse: blocks never written stay holes
    for (let b = 0; b < h.blocks.length; b++) {
      const g = h.blocks[b] as number;
      if (g < 0) continue;
      const pos = b * h.blockSize;
      const len = Math.min(h.blockSize, h.size - pos);
      const { bytesRead } = await (inputs[g] as Awaited<ReturnType<typeof open>>).read(buf, 0, len, pos);
      if (bytesRead < len) buf.fill(0, bytesRead, len);
      if (!buf.subarray(0, len).every((x) => x === 0)) await out.write(buf, 0, len, pos);
    }
    await out.sync();
  } finally {
    await out.close();
    await Promise.all(inputs.map((f) => f.close()));
  }
  const old = h.generations;
  const collapsed: MemoryHeader = { ...h, generations: [buildId], blocks: h.blocks.map((g) => (g < 0 ? -1 : 0)) };
  await writeHeader(dir, collapsed);
  for (const b of old) await rm(generationFile(dir, b), { force: true });
  return collapsed;
}
