// Reads guest memory as a generation chain holds it: each block from the generation file the
// header names, zeros where no generation (or only a hole) holds data. Generation files lay blocks
// out at their memory offsets, so a run of blocks is one read per generation file involved.
import { type FileHandle, open } from 'node:fs/promises';
import { native } from '@wrenn/native';
import { generationFile, type MemoryHeader, readHeader } from './header.js';

export class ChainReader {
  private constructor(
    readonly header: MemoryHeader,
    private readonly files: FileHandle[],
    /** 1 where the block's generation file has data (not a hole); reading holes costs for nothing. */
    private readonly hasData: Uint8Array,
    private scratch: Buffer,
  ) {}

  static async open(dir: string): Promise<ChainReader> {
    const h = await readHeader(dir);
    const paths = h.generations.map((b) => generationFile(dir, b));
    const hasData = new Uint8Array(h.blocks.length);
    paths.forEach((path, g) => {
      for (const [start, end] of native().dataRanges(path)) {
        const last = Math.min(h.blocks.length, Math.ceil(end / h.blockSize));
        for (let b = Math.floor(start / h.blockSize); b < last; b++) if (h.blocks[b] === g) hasData[b] = 1;
      }
    });
    const files: FileHandle[] = [];
    try {
      for (const p of paths) files.push(await open(p, 'r'));
    } catch (err) {
      await Promise.all(files.map((f) => f.close()));
      throw err;
    }
    return new ChainReader(h, files, hasData, Buffer.alloc(0));
  }

  /** true when some block in [first, first + count) has data in the chain. */
  anyData(first: number, count: number): boolean {
    const end = Math.min(first + count, this.hasData.length);
    for (let b = first; b < end; b++) if (this.hasData[b]) return true;
    return false;
  }

  /** Fills `out` with blocks [first, first + count) (bytes past the memory size stay zero). */
  async read(first: number, count: number, out: Buffer): Promise<void> {
    const h = this.header;
    const bs = h.blockSize;
    const end = Math.min(first + count, h.blocks.length);
    out.fill(0, 0, count * bs);
    for (let g = 0; g < this.files.length; g++) {
      let lo = -1;
      let hi = -1;
      for (let b = first; b < end; b++) {
        if (h.blocks[b] !== g || !this.hasData[b]) continue;
        if (lo < 0) lo = b;
        hi = b;
      }
      if (lo < 0) continue;
      const len = Math.min((hi + 1) * bs, h.size) - lo * bs;
      if (this.scratch.length < len) this.scratch = Buffer.alloc(len);
      const { bytesRead } = await (this.files[g] as FileHandle).read(this.scratch, 0, len, lo * bs);
      this.scratch.fill(0, bytesRead, len);
      for (let b = lo; b <= hi; b++) {
        if (h.blocks[b] !== g || !this.hasData[b]) continue;
        const from = (b - lo) * bs;
        this.scratch.copy(out, (b - first) * bs, from, Math.min(from + bs, len));
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}
