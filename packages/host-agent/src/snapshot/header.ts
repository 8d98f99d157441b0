// The memory snapshot header of a paused VM: which generation file holds each block of guest
// memory. A Full snapshot is generation 0 for every block; each Diff snapshot (only the pages
// dirtied since the last one, laid out at their memory offsets in a sparse file) becomes a new
// generation for the blocks it contains. Files are `memfile.<buildId>` next to the header.
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const HEADER_FILE = 'memfile.header.json';
export const DEFAULT_BLOCK_SIZE = 4096;
/** Generations kept before they collapse into one Full file. */
export const MAX_GENERATIONS = 10;

export interface MemoryHeader {
  version: 1;
  blockSize: number;
  /** Guest memory size in bytes. */
  size: number;
  /** buildId per generation, oldest first; the file is memfile.<buildId>. */
  generations: string[];
  /** Generation index per block (-1: never written, reads as zeros). */
  blocks: Int32Array;
}

interface HeaderJson {
  version: 1;
  blockSize: number;
  size: number;
  generations: string[];
  blocks: string; // base64 of little-endian int32 per block
}

const BUILD_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

export function newBuildId(): string {
  return randomBytes(8).toString('hex');
}

export function generationFile(dir: string, buildId: string): string {
  if (!BUILD_ID.test(buildId)) throw new Error(`invalid build id ${JSON.stringify(buildId)}`);
  return join(dir, `memfile.${buildId}`);
}

export function emptyHeader(size: number, blockSize = DEFAULT_BLOCK_SIZE): MemoryHeader {
  if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`memory size must be a positive integer, got ${size}`);
  if (!Number.isInteger(blockSize) || blockSize < 4096 || (blockSize & (blockSize - 1)) !== 0) {
    throw new Error(`block size must be a power of two >= 4096, got ${blockSize}`);
  }
  return { version: 1, blockSize, size, generations: [], blocks: new Int32Array(Math.ceil(size / blockSize)).fill(-1) };
}

export async function readHeader(dir: string): Promise<MemoryHeader> {
  const path = join(dir, HEADER_FILE);
  const j = JSON.parse(await readFile(path, 'utf8')) as HeaderJson;
  if (j.version !== 1 || !Array.isArray(j.generations) || typeof j.blocks !== 'string') {
    throw new Error(`${path} is not a version 1 memory snapshot header`);
  }
  const raw = Buffer.from(j.blocks, 'base64');
  const blocks = new Int32Array(raw.length / 4);
  for (let i = 0; i < blocks.length; i++) blocks[i] = raw.readInt32LE(i * 4);
  if (blocks.length !== Math.ceil(j.size / j.blockSize))
    throw new Error(`${path}: block count does not match the memory size`);
  return { version: 1, blockSize: j.blockSize, size: j.size, generations: j.generations, blocks };
}

export async function writeHeader(dir: string, h: MemoryHeader): Promise<void> {
  const raw = Buffer.alloc(h.blocks.length * 4);
  h.blocks.forEach((g, i) => {
    raw.writeInt32LE(g, i * 4);
  });
  const j: HeaderJson = {
    version: 1,
    blockSize: h.blockSize,
    size: h.size,
    generations: h.generations,
    blocks: raw.toString('base64'),
  };
  const path = join(dir, HEADER_FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(j));
  await rename(`${path}.tmp`, path);
}

/** Generation files in index order, for the UFFD handler. */
export function generationFiles(dir: string, h: MemoryHeader): string[] {
  return h.generations.map((b) => generationFile(dir, b));
}
