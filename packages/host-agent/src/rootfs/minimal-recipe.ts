// `minimal`: busybox-static and its applet symlinks on the skeleton. Offline, in about a second.
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { TemplateRecipe } from './recipe.js';
import { makeSkeleton } from './skeleton.js';

const run = promisify(execFile);
const BUSYBOX = '/bin/busybox';

/** true when the ELF file has no PT_INTERP program header, i.e. needs no dynamic loader. */
async function isStaticElf(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return false; // ELF, 64-bit
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return false; // PT_INTERP
    return true;
  } finally {
    await fh.close();
  }
}

export const minimalRecipe: TemplateRecipe = {
  description: 'busybox (static) with a root and a user account; no package manager',
  // The host's busybox is copied as it is: a new busybox package does not make this stale.
  inputs: { busybox: BUSYBOX, revision: 1 },
  // Unchanged since before recipe versions: builds of then are not rebuilt.
  inputsBeforeVersions: { busybox: BUSYBOX, revision: 1 },
  async build(rootfs, onProgress) {
    const ok = await isStaticElf(BUSYBOX).catch(() => false);
    if (!ok) {
      throw new Error(
        `${BUSYBOX} is missing or not statically linked: install the Debian package busybox-static (apt-get install busybox-static)`,
      );
    }
    onProgress('minimal: copying busybox and creating applet links');
    await makeSkeleton(rootfs);
    await copyFile(BUSYBOX, join(rootfs, 'bin/busybox'));
    await chmod(join(rootfs, 'bin/busybox'), 0o755);
    const { stdout } = await run(BUSYBOX, ['--list-full']);
    for (const rel of stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)) {
      if (rel === 'bin/busybox' || rel.includes('..')) continue;
      const link = join(rootfs, rel);
      await mkdir(dirname(link), { recursive: true });
      await symlink('/bin/busybox', link).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
    await writeFile(
      join(rootfs, 'etc/os-release'),
      'NAME="Wrenn minimal"\nID=wrenn-minimal\nPRETTY_NAME="Wrenn minimal (busybox)"\n',
    );
  },
};
