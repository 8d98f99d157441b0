// A minimal writer of "newc" cpio archives (the initramfs format the kernel unpacks).
import { gzipSync } from 'node:zlib';

export interface CpioEntry {
  path: string; // relative, no leading slash
  mode: number; // full st_mode (type + permissions)
  data?: Buffer; // file contents or symlink target
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export const cpioDir = (path: string, perm = 0o755): CpioEntry => ({ path, mode: S_IFDIR | perm });
export const cpioFile = (path: string, data: Buffer, perm = 0o644): CpioEntry => ({ path, mode: S_IFREG | perm, data });
export const cpioSymlink = (path: string, target: string): CpioEntry => ({
  path,
  mode: S_IFLNK | 0o777,
  data: Buffer.from(target),
});

const hex8 = (n: number) => n.toString(16).padStart(8, '0');
const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

function header(ino: number, e: CpioEntry, size: number, nameLen: number): Buffer {
  const isDir = (e.mode & 0o170000) === S_IFDIR;
  const fields = [ino, e.mode, 0, 0, isDir ? 2 : 1, 0, size, 0, 0, 0, 0, nameLen, 0];
  return Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
}

/** The archive (uncompressed); entries owned by root, in the order given (parents first). */
export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    off += b.length;
  };
  const add = (ino: number, e: CpioEntry) => {
    const name = Buffer.from(`${e.path}\0`);
    const data = e.data ?? Buffer.alloc(0);
    push(header(ino, e, data.length, name.length));
    push(name);
    push(pad4(off));
    push(data);
    push(pad4(off));
  };
  entries.forEach((e, i) => {
    if (!e.path || e.path.startsWith('/') || e.path.includes('..'))
      throw new Error(`bad cpio path ${JSON.stringify(e.path)}`);
    add(i + 1, e);
  });
  add(0, { path: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

export const gzipCpio = (entries: readonly CpioEntry[]): Buffer => gzipSync(cpioArchive(entries), { level: 6 });
