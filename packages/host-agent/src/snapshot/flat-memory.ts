// Between a flat memory file (the whole guest RAM at its offsets, as a VMM maps it) and a
// generation chain: rebuild the flat file from the chain, write a flat file as a Full generation,
// or write only the blocks that differ from the chain as a Diff generation. Every output is
// sparse: blocks that are not written stay holes (zero blocks of a Full, unchanged blocks of a Diff).
import { type FileHandle, open, stat } from 'node:fs/promises';
import { native } from '@wrenn/native';
import { ChainReader } from './chain-reader.js';
import { DEFAULT_BLOCK_SIZE } from './header.js';

/** Blocks handled per read: 1 MiB with 4 KiB blocks. */
const CHUNK_BLOCKS = 256;

/** Writes each run of consecutive blocks that `pick` selects from `buf` (block `first` at offset 0). */
async function writeRuns(
  out: FileHandle,
  buf: Buffer,
  first: number,
  count: number,
  blockSize: number,
  size: number,
  pick: (i: number) => boolean,
): Promise<number> {
  let written = 0;
  let i = 0;
  while (i < count) {
    if (!pick(i)) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < count && pick(j)) j++;
    const pos = (first + i) * blockSize;
    const len = Math.min((first + j) * blockSize, size) - pos;
    await out.write(buf, i * blockSize, len, pos);
    written += len;
    i = j;
  }
  return written;
}

function isZero(buf: Buffer, i: number, blockSize: number, zero: Buffer): boolean {
  return buf.subarray(i * blockSize, (i + 1) * blockSize).equals(zero);
}

/** 1 per block of `path` that lies in a data range (holes read as zeros and need no reading). */
function dataBlocks(path: string, blocks: number, blockSize: number): Uint8Array {
  const map = new Uint8Array(blocks);
  for (const [start, end] of native().dataRanges(path)) {
    const last = Math.min(blocks, Math.ceil(end / blockSize));
    for (let b = Math.floor(start / blockSize); b < last; b++) map[b] = 1;
  }
  return map;
}

const anyIn = (map: Uint8Array, first: number, count: number) => {
  for (let b = first; b < Math.min(first + count, map.length); b++) if (map[b]) return true;
  return false;
};

/** Rebuilds the flat memory file `outPath` from the chain in `dir`; returns the bytes written (non-zero blocks). */
export async function materializeChain(dir: string, outPath: string): Promise<{ size: number; dataBytes: number }> {
  const chain = await ChainReader.open(dir);
  const { blockSize: bs, size } = chain.header;
  const nblocks = chain.header.blocks.length;
  const out = await open(outPath, 'w');
  const buf = Buffer.alloc(CHUNK_BLOCKS * bs);
  const zero = Buffer.alloc(bs);
  let dataBytes = 0;
  try {
    await out.truncate(size);
    for (let first = 0; first < nblocks; first += CHUNK_BLOCKS) {
      if (!chain.anyData(first, CHUNK_BLOCKS)) continue;
      const count = Math.min(CHUNK_BLOCKS, nblocks - first);
      await chain.read(first, count, buf);
      dataBytes += await writeRuns(out, buf, first, count, bs, size, (i) => !isZero(buf, i, bs, zero));
    }
  } finally {
    await out.close();
    await chain.close();
  }
  return { size, dataBytes };
}

/** Copies flat memory file `src` to `dst` leaving zero blocks as holes (a Full generation file). */
export async function sparseCopy(src: string, dst: string, blockSize = DEFAULT_BLOCK_SIZE): Promise<number> {
  const size = (await stat(src)).size;
  const nblocks = Math.ceil(size / blockSize);
  const has = dataBlocks(src, nblocks, blockSize);
  const input = await open(src, 'r');
  const out = await open(dst, 'w');
  const buf = Buffer.alloc(CHUNK_BLOCKS * blockSize);
  const zero = Buffer.alloc(blockSize);
  let dataBytes = 0;
  try {
    await out.truncate(size);
    for (let first = 0; first < nblocks; first += CHUNK_BLOCKS) {
      if (!anyIn(has, first, CHUNK_BLOCKS)) continue;
      const count = Math.min(CHUNK_BLOCKS, nblocks - first);
      const len = Math.min(count * blockSize, size - first * blockSize);
      const { bytesRead } = await input.read(buf, 0, len, first * blockSize);
      buf.fill(0, bytesRead);
      dataBytes += await writeRuns(out, buf, first, count, blockSize, size, (i) => !isZero(buf, i, blockSize, zero));
    }
    await out.sync();
  } finally {
    await input.close();
    await out.close();
  }
  return dataBytes;
}

export interface DiffResult {
  /** Blocks whose content differs from the chain's (written into the diff file). */
  changedBlocks: number;
  totalBlocks: number;
  dataBytes: number;
}

/**
 * Writes `diffPath` (sparse, the memory's size) holding only the blocks of flat memory file
 * `memoryPath` whose bytes differ from what the chain in `dir` holds for them. Found by comparing
 * every block: for VMMs that cannot say which pages were dirtied (QEMU 7 writes no dirty-page
 * list to files). Register it with addGeneration(dir, buildId, 'diff').
 */
export async function writeDiffAgainstChain(dir: string, memoryPath: string, diffPath: string): Promise<DiffResult> {
  const chain = await ChainReader.open(dir);
  const { blockSize: bs, size } = chain.header;
  const nblocks = chain.header.blocks.length;
  try {
    const memSize = (await stat(memoryPath)).size;
    if (memSize !== size)
      throw new Error(`${memoryPath} is ${memSize} bytes but the snapshot chain in ${dir} holds ${size}`);
    const has = dataBlocks(memoryPath, nblocks, bs);
    const input = await open(memoryPath, 'r');
    const out = await open(diffPath, 'w');
    const mem = Buffer.alloc(CHUNK_BLOCKS * bs);
    const old = Buffer.alloc(CHUNK_BLOCKS * bs);
    const flags = new Uint8Array(CHUNK_BLOCKS);
    let changedBlocks = 0;
    let dataBytes = 0;
    try {
      await out.truncate(size);
      for (let first = 0; first < nblocks; first += CHUNK_BLOCKS) {
        const memHas = anyIn(has, first, CHUNK_BLOCKS);
        if (!memHas && !chain.anyData(first, CHUNK_BLOCKS)) continue; // zeros on both sides
        const count = Math.min(CHUNK_BLOCKS, nblocks - first);
        const len = Math.min(count * bs, size - first * bs);
        if (memHas) {
          const { bytesRead } = await input.read(mem, 0, len, first * bs);
          mem.fill(0, bytesRead);
        } else mem.fill(0);
        await chain.read(first, count, old);
        for (let i = 0; i < count; i++) {
          flags[i] = mem.subarray(i * bs, (i + 1) * bs).equals(old.subarray(i * bs, (i + 1) * bs)) ? 0 : 1;
          changedBlocks += flags[i] as number;
        }
        dataBytes += await writeRuns(out, mem, first, count, bs, size, (i) => flags[i] === 1);
      }
      await out.sync();
    } finally {
      await input.close();
      await out.close();
    }
    return { changedBlocks, totalBlocks: nblocks, dataBytes };
  } finally {
    await chain.close();
  }
}
