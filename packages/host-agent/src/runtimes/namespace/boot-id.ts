// A fresh /proc/sys/kernel/random/boot_id per boot of a namespace capsule (a cold boot or a resume
// from disk), as a VM would have: software keys caches and "did the machine reboot?" checks on it.
// The host writes it in the capsule's sandbox dir; nsinit binds it read-only over the file.
import { randomUUID } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes a new boot id for the capsule's next boot and returns the file nsinit binds. */
export function writeBootId(sandboxDir: string): string {
  const file = join(sandboxDir, 'boot_id');
  const tmp = `${file}.${process.pid}.tmp`;
  // Host root's, read-only: the capsule's root is another host uid and the bind is read-only too.
  writeFileSync(tmp, `${randomUUID()}\n`, { mode: 0o444 });
  renameSync(tmp, file);
  return file;
}
