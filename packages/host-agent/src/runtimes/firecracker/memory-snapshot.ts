// A Firecracker capsule's memory snapshots on disk: the machine state (`vmstate`, the newest one
// only) and the memory generations with their header (snapshot/header.ts), plus the UFFD handler
// that serves a restored VM's page faults from them.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startUffdHandler, type UffdHandler } from '@wrenn/native';
import { addGeneration, collapse } from '../../snapshot/chain.js';
import { generationFiles, HEADER_FILE, newBuildId, readHeader } from '../../snapshot/header.js';
import { exists } from '../vm-boot.js';

/** Copies a file keeping its holes (and sharing its blocks where the file system can reflink). */
export function sparseCopy(src: string, dst: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('cp', ['--reflink=auto', '--sparse=always', '--', src, dst], (err, _out, stderr) =>
      err ? reject(new Error(`copying ${src} to ${dst} failed: ${stderr.trim() || err.message}`)) : resolve(),
    ),
  );
}

export const VMSTATE_FILE = 'vmstate';

export interface PendingSnapshot {
  buildId: string;
  kind: 'full' | 'diff';
  /** Names Firecracker writes, inside the capsule's directory. */
  vmstateName: string;
  memName: string;
}

/** Full when the capsule has no generation yet (or must restart its chain), Diff otherwise. */
export async function nextSnapshot(snapDir: string, forceFull: boolean): Promise<PendingSnapshot> {
  const hasChain = !forceFull && (await exists(join(snapDir, HEADER_FILE)));
  const buildId = newBuildId();
  return {
    buildId,
    kind: hasChain ? 'diff' : 'full',
    vmstateName: `vmstate.${buildId}`,
    memName: `memfile.${buildId}`,
  };
}

/**
 * Moves what Firecracker wrote into the capsule's directory to the snapshot directory and adds it
 * as the newest generation. Returns the bytes the generation occupies on disk.
 */
export async function recordSnapshot(
  dir: string,
  snapDir: string,
  p: PendingSnapshot,
  memoryBytes: number,
): Promise<{ bytes: number; collapsed: boolean }> {
  await mkdir(snapDir, { recursive: true });
  const mem = join(snapDir, p.memName);
  await rename(join(dir, p.memName), mem);
  const bytes = (await stat(mem)).blocks * 512; // a Diff is sparse: only its dirty pages take space
  const r = await addGeneration(snapDir, p.buildId, p.kind, { size: memoryBytes });
  await rename(join(dir, p.vmstateName), join(snapDir, VMSTATE_FILE));
  return { bytes, collapsed: r.collapsed };
}

/** Starts a UFFD handler on `socketPath` serving the memory chain in `snapDir`. */
export async function serveMemory(snapDir: string, socketPath: string): Promise<UffdHandler> {
  const h = await readHeader(snapDir);
  const files = generationFiles(snapDir, h);
  for (const f of files) {
    if (!(await exists(f))) throw new Error(`memory generation ${f} named by the snapshot header is missing`);
  }
  await rm(socketPath, { force: true });
  const handler = startUffdHandler({ socketPath, blockSize: h.blockSize, blockGen: h.blocks, files });
  // The VMM connects as soon as it loads the snapshot: the socket must be listening by then.
  for (let i = 0; i < 500 && !(await exists(socketPath)); i++) await new Promise((r) => setTimeout(r, 2));
  if (!(await exists(socketPath))) {
    await handler.stop().catch(() => {});
    throw new Error(`the UFFD handler did not listen on ${socketPath}`);
  }
  return handler;
}

/** Copies a capsule's snapshot (vmstate + chain) into `outDir` as one Full generation. */
export async function copyCollapsed(snapDir: string, outDir: string): Promise<number> {
  await mkdir(outDir, { recursive: true });
  for (const name of await readdir(snapDir)) {
    if (name === VMSTATE_FILE || name === HEADER_FILE || name.startsWith('memfile.'))
      await sparseCopy(join(snapDir, name), join(outDir, name));
  }
  const h = await collapse(outDir);
  return h.size;
}
