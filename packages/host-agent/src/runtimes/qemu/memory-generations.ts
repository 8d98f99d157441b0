// Guest RAM of a paused QEMU VM as memory generations (src/snapshot): QEMU maps the RAM from a
// file (memory-backend-file, share=on), so after it quits that file is the memory. The first
// pause makes it a Full generation (renamed, zero blocks punched out); later pauses write a Diff
// of only the blocks that differ from what the chain holds. QEMU 7.2 exports no dirty-page list to
// a file, so the changed blocks are found by comparison, block by block.
import { spawn } from 'node:child_process';
import { access, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addGeneration,
  generationFile,
  HEADER_FILE,
  newBuildId,
  readHeader,
  writeDiffAgainstChain,
} from '../../snapshot/index.js';

export interface SavedGeneration {
  kind: 'full' | 'diff';
  /** Disk usage of the new generation file (st_blocks * 512), measured before any collapse. */
  bytes: number;
  /** Blocks the generation holds (all non-hole blocks of a Full; changed blocks of a Diff). */
  changedBlocks: number;
  totalBlocks: number;
  blockSize: number;
  /** Generations in the chain afterwards. */
  generations: number;
  /** true when the chain reached its limit and was collapsed into one Full file. */
  collapsed: boolean;
}

export const diskBytes = async (p: string): Promise<number> => (await stat(p)).blocks * 512;

export const hasChain = (dir: string): Promise<boolean> =>
  access(join(dir, HEADER_FILE)).then(
    () => true,
    () => false,
  );

/** Punches holes where the file holds zero blocks (util-linux fallocate); a dense file stays correct if it fails. */
function digHoles(path: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('fallocate', ['--dig-holes', path], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

/**
 * Turns the RAM file `memoryPath` of a stopped VM into the next generation of the chain in
 * `chainDir` and removes it (its pages leave the page cache with it).
 */
export async function saveGeneration(chainDir: string, memoryPath: string): Promise<SavedGeneration> {
  const buildId = newBuildId();
  const file = generationFile(chainDir, buildId);
  if (!(await hasChain(chainDir))) {
    await rename(memoryPath, file);
    await digHoles(file);
    const bytes = await diskBytes(file);
    const r = await addGeneration(chainDir, buildId, 'full');
    return {
      kind: 'full',
      bytes,
      changedBlocks: Math.ceil(bytes / r.header.blockSize),
      totalBlocks: r.header.blocks.length,
      blockSize: r.header.blockSize,
      generations: r.header.generations.length,
      collapsed: false,
    };
  }
  try {
    const d = await writeDiffAgainstChain(chainDir, memoryPath, file);
    const bytes = await diskBytes(file);
    const r = await addGeneration(chainDir, buildId, 'diff');
    await rm(memoryPath, { force: true });
    return {
      kind: 'diff',
      bytes,
      changedBlocks: d.changedBlocks,
      totalBlocks: d.totalBlocks,
      blockSize: r.header.blockSize,
      generations: r.header.generations.length,
      collapsed: r.collapsed,
    };
  } catch (err) {
    // The chain is unchanged unless addGeneration wrote its header; the RAM file stays for a retry.
    const h = await readHeader(chainDir).catch(() => undefined);
    if (!h?.generations.includes(buildId)) await rm(file, { force: true });
    throw err;
  }
}
