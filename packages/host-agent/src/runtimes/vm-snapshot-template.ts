// Writing a snapshot template from a VM capsule, the part both VM runtimes share: the files are
// written into a temporary directory beside the templates, the frozen VM's shape and the manifest
// go with them, and one rename publishes the template (or the directory goes on any failure).
// What the VMM writes into it (disk, device state, memory) is each runtime's own `fill`.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertNewTemplateName, writeVmSnapshotManifest } from '../rootfs/manifest.js';
import type { TemplateStore } from '../rootfs/template-store.js';

/** The frozen VM's shape, written beside the template's files and read back by each create. */
export interface SnapshotInfo {
  vcpus: number;
  memoryMb: number;
  parent: string;
  createdFrom: string;
}

export interface SnapshotTemplateOptions {
  store: TemplateStore;
  name: string;
  runtime: 'qemu' | 'firecracker';
  /** Where the frozen VM's shape goes in the template (read back by VmBoot.frozenTemplate). */
  infoFile: string;
  /** The capsule: its template (the new one's parent) and machine shape. */
  from: { id: string; template: string; vcpus: number; memoryMb: number };
  /** Writes the disk, device state and memory into `tmp`; may return more of the VM's shape. */
  fill: (tmp: string) => Promise<Record<string, unknown> | undefined>;
}

export async function writeSnapshotTemplate(o: SnapshotTemplateOptions): Promise<void> {
  assertNewTemplateName(o.name);
  const dir = o.store.templateDir(o.name);
  if (existsSync(dir)) throw new Error(`template "${o.name}" already exists`);
  const tmp = join(o.store.imagesDir, `.snap-${o.name}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const more = await o.fill(tmp);
    const { vcpus, memoryMb, template: parent, id: createdFrom } = o.from;
    const info: SnapshotInfo = { vcpus, memoryMb, parent, createdFrom };
    await writeFile(join(tmp, o.infoFile), JSON.stringify({ ...info, ...more }));
    const size = await bytesOnDisk(tmp);
    await writeVmSnapshotManifest(tmp, { name: o.name, parent, runtime: o.runtime, size });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Disk blocks the files under `dir` take (sparse memory files count what they hold). */
async function bytesOnDisk(dir: string): Promise<number> {
  let size = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) size += await bytesOnDisk(p);
    else if (e.isFile()) size += (await stat(p)).blocks * 512;
  }
  return size;
}
