// Unpacks one image layer (a tar stream) into a directory in overlayfs's own format, so layers
// stack as overlay lower dirs: `.wh.x` becomes a 0:0 character device, `.wh..wh..opq` the
// trusted.overlay.opaque xattr. Ids are shifted into the capsule range (id-map.ts). A layer is
// hostile input: paths with `..` or through a symlink are refused, absolute paths are taken
// relative to the root, device nodes are skipped, ids beyond the range become nobody without
// setuid/setgid; nothing is ever written outside `dest`.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, lchown, link, lstat, mkdir, open, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { native } from '@wrenn/native';
import { InvalidArgumentError } from '@wrenn/protocol';
import { extract } from 'tar-stream';
import { hostId, ID_RANGE } from '../rootfs/id-map.js';

const run = promisify(execFile);
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const NOBODY = 65534;
const SETID_BITS = 0o6000;

/** A tar entry's body: iterated for files, drained otherwise. */
type EntryBody = AsyncIterable<Uint8Array> & { resume(): unknown };

/** The header fields used here; declared locally so tar-stream 2 and 3 (and their typings) both fit. */
interface Header {
  name: string;
  type?: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  linkname?: string | null;
}

/** tar-stream's extract stream, seen through the 'entry' event API both major versions share. */
type TarExtract = NodeJS.WritableStream & {
  on(event: 'entry', fn: (header: Header, body: EntryBody, next: (err?: Error) => void) => void): unknown;
  destroy(err?: Error): void;
};

export interface UnpackStats {
  entries: number;
  bytes: number;
  whiteouts: number;
  opaqueDirs: number;
  /** Entries left out (device nodes, FIFOs, unknown types), as `type path`. */
  skipped: string[];
}

/** Splits a tar entry name into safe components; refuses `..`. Leading `/` and `./` are dropped. */
export function entryParts(name: string, layer: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new InvalidArgumentError(`layer ${layer}: entry ${JSON.stringify(name)} climbs out of the root (..)`);
  if (parts.some((p) => p.includes('\0'))) throw new InvalidArgumentError(`layer ${layer}: entry name has a NUL byte`);
  return parts;
}

function owner(h: Header): { uid: number; gid: number; keepSetId: boolean } {
  const uid = h.uid ?? 0;
  const gid = h.gid ?? 0;
  const inRange = (id: number) => Number.isInteger(id) && id >= 0 && id < ID_RANGE;
  return {
    uid: hostId(inRange(uid) ? uid : NOBODY),
    gid: hostId(inRange(gid) ? gid : NOBODY),
    keepSetId: inRange(uid) && inRange(gid),
  };
}

class LayerWriter {
  readonly stats: UnpackStats = { entries: 0, bytes: 0, whiteouts: 0, opaqueDirs: 0, skipped: [] };

  constructor(
    private readonly dest: string,
    private readonly layer: string,
  ) {}

  // Directories already checked (or made) as real directories in this layer, by relative path.
  // Emptied whenever anything is removed, so a later symlink in their place is seen.
  private readonly knownDirs = new Set<string>();

  /** Makes sure every directory on the way to `parts` exists and is a real directory (not a symlink). */
  private async parentDir(parts: string[], create: boolean): Promise<string> {
    let dir = this.dest;
    let rel = '';
    for (const p of parts) {
      dir = join(dir, p);
      rel = rel ? `${rel}/${p}` : p;
      if (this.knownDirs.has(rel)) continue;
      const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (!st) {
        if (!create) throw new InvalidArgumentError(`layer ${this.layer}: ${parts.join('/')} does not exist`);
        await mkdir(dir, { mode: 0o755 });
        await lchown(dir, hostId(0), hostId(0));
      } else if (!st.isDirectory()) {
        throw new InvalidArgumentError(
          `layer ${this.layer}: ${parts.join('/')} goes through a ${st.isSymbolicLink() ? 'symlink' : 'non-directory'}; refused`,
        );
      }
      this.knownDirs.add(rel);
    }
    return dir;
  }

  private async clear(path: string, keepDir: boolean): Promise<void> {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    this.knownDirs.clear();
    await rm(path, { recursive: true, force: true });
  }

  async entry(h: Header, body: EntryBody): Promise<void> {
    this.stats.entries++;
    const parts = entryParts(h.name, this.layer);
    const base = parts.pop();
    if (base === undefined) {
      body.resume();
      return; // the root itself: keep ours
    }
    const dir = await this.parentDir(parts, true);
    const path = join(dir, base);
    const { uid, gid, keepSetId } = owner(h);
    const mode = (h.mode ?? 0o644) & (keepSetId ? 0o7777 : 0o777 & ~SETID_BITS);

    if (base === OPAQUE) {
      body.resume();
      const fd = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        const r = await native().fsAsUser({
          op: 'fdSetXattrs',
          fd: fd.fd,
          prefix: 'trusted.overlay.opaque',
          set: [['trusted.overlay.opaque', 'y']],
        });
        if (r.errno) throw new Error(`setting trusted.overlay.opaque on ${dir}: errno ${r.errno}`);
      } finally {
        await fd.close();
      }
      this.stats.opaqueDirs++;
      return;
    }
    if (base.startsWith(WHITEOUT)) {
      body.resume();
      const hidden = base.slice(WHITEOUT.length);
      if (!hidden) throw new InvalidArgumentError(`layer ${this.layer}: empty whiteout name`);
      const target = join(dir, hidden);
      await this.clear(target, false);
      await run('mknod', [target, 'c', '0', '0']);
      await lchown(target, hostId(0), hostId(0));
      this.stats.whiteouts++;
      return;
    }

    switch (h.type) {
      case 'file':
      case 'contiguous-file': {
        await this.clear(path, false);
        const fh = await open(
          path,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          0o600,
        );
        try {
          for await (const chunk of body) await fh.write(chunk);
          await fh.chown(uid, gid);
          await fh.chmod(mode); // after chown, which clears setuid/setgid
        } finally {
          await fh.close();
        }
        this.stats.bytes += h.size ?? 0;
        return;
      }
      case 'directory': {
        body.resume();
        await this.clear(path, true);
        await mkdir(path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err;
        });
        await lchown(path, uid, gid);
        await chmod(path, mode);
        return;
      }
      case 'symlink': {
        body.resume();
        await this.clear(path, false);
        await symlink(h.linkname ?? '', path);
        await lchown(path, uid, gid);
        return;
      }
      case 'link': {
        body.resume();
        const targetParts = entryParts(h.linkname ?? '', this.layer);
        const targetBase = targetParts.pop();
        if (targetBase === undefined) throw new InvalidArgumentError(`layer ${this.layer}: hard link to the root`);
        const target = join(await this.parentDir(targetParts, false), targetBase);
        const st = await lstat(target).catch(() => undefined);
        if (!st || st.isDirectory())
          throw new InvalidArgumentError(
            `layer ${this.layer}: hard link ${h.name} to missing or directory ${h.linkname}`,
          );
        await this.clear(path, false);
        await link(target, path);
        return;
      }
      default:
        body.resume();
        this.stats.skipped.push(`${h.type} ${parts.concat(base).join('/')}`);
    }
  }
}

/** Unpacks the (decompressed) tar stream `tar` into the empty directory `dest`. */
export async function unpackLayer(tar: Readable, dest: string, layer: string): Promise<UnpackStats> {
  await lchown(dest, hostId(0), hostId(0));
  await chmod(dest, 0o755);
  const writer = new LayerWriter(dest, layer);
  const ex = extract() as unknown as TarExtract;
  let failure: Error | undefined;
  let current: Promise<void> = Promise.resolve();
  ex.on('entry', (header, body, next) => {
    // One entry at a time: tar-stream reads on only after next().
    current = writer.entry(header, body).then(
      () => next(),
      (err: Error) => {
        failure ??= err;
        ex.destroy(err);
      },
    );
  });
  try {
    await pipeline(tar, ex);
  } catch (err) {
    tar.destroy();
    throw failure ?? err;
  }
  await current;
  if (failure) throw failure;
  return writer.stats;
}
