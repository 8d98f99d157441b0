// The guest init scripts kept in images/wrenn-init/ at the repository root.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function wrennInitDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'images/wrenn-init');
    if (existsSync(join(candidate, 'wrenn-init.sh'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find images/wrenn-init above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const wrennInitFile = (name: 'wrenn-init.sh' | 'initramfs-init.sh'): Promise<Buffer> =>
  readFile(join(wrennInitDir(), name));
