// What goes into a VM root disk besides the template's own files: the guest init, busybox, the
// node binary and the envd bundle. Their fingerprint is kept next to the built image, so a disk
// made with an older envd or init is rebuilt instead of booting stale guest code.
import { createHash } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out.sort();
}

/** A hex digest that changes when the init script, busybox, node or the envd bundle changes. */
export async function guestInputsFingerprint(opts: {
  initScript: Buffer;
  busybox: string;
  nodePath: string;
  envdBundleDir: string;
}): Promise<string> {
  const h = createHash('sha256');
  h.update(opts.initScript);
  for (const bin of [opts.busybox, opts.nodePath]) {
    const real = await realpath(bin);
    const s = await stat(real);
    h.update(`\0${real}:${s.size}:${s.mtimeMs}`);
  }
  for (const f of await filesUnder(opts.envdBundleDir)) {
    // Every file by content (a few MB): a rebuilt addon or bundle can keep its size.
    h.update(`\0${relative(opts.envdBundleDir, f)}:`);
    h.update(await readFile(f));
  }
  return h.digest('hex');
}
