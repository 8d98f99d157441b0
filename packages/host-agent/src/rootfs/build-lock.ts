// One build of a template at a time, across processes: an exclusive lock file holding the
// builder's pid. A lock whose pid is gone (a crashed build) is taken over.
import { open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Lock {
  release(): Promise<void>;
}

/** Waits (polling) while another live process holds `path`; `onWait` is told once. */
export async function acquireLock(path: string, onWait?: (holderPid: number) => void): Promise<Lock> {
  let told = false;
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return { release: () => unlink(path).catch(() => undefined) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      if (!told) onWait?.(holder);
      told = true;
      await sleep(250);
      continue;
    }
    // Stale (holder gone) or half-written: remove it and race for it again.
    if (!Number.isInteger(holder)) await sleep(50); // a writer may be between open and write
    const again = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (again === holder || Number.isNaN(again)) await unlink(path).catch(() => undefined);
  }
}
