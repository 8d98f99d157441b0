// The volume content API's file operations, on the host, confined to one volume's files. Every
// path is first resolved with openat2(RESOLVE_IN_ROOT) under the volume's root (so '..' and
// symlinks a capsule made inside the volume, absolute ones included, stay inside it) into an
// O_PATH fd; what follows acts on /proc/self/fd/<fd> or on one name below it without following a
// final symlink (O_NOFOLLOW, lstat, lchown, unlink), so a capsule swapping a directory for a
// symlink meanwhile gets at most an error. Owners are shown and set as capsules see them: the files
// are stored in the canonical id range (HOST_ID_BASE + u).
import { closeSync, constants, openSync, type Stats } from 'node:fs';
import { lchown, lstat, mkdir, open, readdir, readlink, rmdir, stat, unlink } from 'node:fs/promises';
import { native } from '@wrenn/native';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  VOLUME_LIMITS,
  type VolumeContentOp,
  type VolumeEntryJson,
  volumeContentPath,
} from '@wrenn/protocol';
import { HOST_ID_BASE } from '../rootfs/id-map.js';

const O_PATH = 0o10000000;
const ID_SPAN = 65536;
const NOBODY = 65534;

/** The contract's volume entry (name, path, type, size, mode, uid, gid) with the host's times and link target. */
export interface VolumeEntryInfo extends Omit<VolumeEntryJson, 'modified_at' | 'symlink_target'> {
  atime: number;
  mtime: number;
  ctime: number;
  target: string;
}

export type { VolumeContentOp };

const fdPath = (fd: number, name?: string) =>
  name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
const shown = (id: number) => (id >= HOST_ID_BASE && id < HOST_ID_BASE + ID_SPAN ? id - HOST_ID_BASE : NOBODY);

function stored(id: number | undefined, field: string): number | undefined {
  if (id === undefined) return undefined;
  if (!Number.isInteger(id) || id < 0 || id >= ID_SPAN)
    throw new InvalidArgumentError(`${field} must be from 0 to ${ID_SPAN - 1}`);
  return HOST_ID_BASE + id;
}

function checkMode(mode: number | undefined): number | undefined {
  if (mode === undefined) return undefined;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
    throw new InvalidArgumentError('mode must be from 0 to 0o7777');
  return mode;
}

/** errno errors as domain errors naming the volume path (never the host's). */
function domainError(err: unknown, path: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `'/${path}'`;
  switch (code) {
    case 'ENOENT':
      return new NotFoundError(`path ${where} not found in the volume`);
    case 'EEXIST':
    case 'ENOTEMPTY':
      return new FailedPreconditionError(`path ${where} already exists`);
    case 'ENOTDIR':
      return new InvalidArgumentError(`a component of ${where} is not a directory`);
    case 'EISDIR':
      return new InvalidArgumentError(`path ${where} is a directory`);
    case 'ELOOP':
      return new InvalidArgumentError(`path ${where} is a symlink here; name its target`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new ResourceExhaustedError(`the volume is full (writing ${where})`, { code: 'volume_full' });
    case 'ENAMETOOLONG':
      return new InvalidArgumentError(`path ${where} is too long`);
    case 'EACCES':
    case 'EPERM':
      return new PermissionDeniedError(`path ${where} cannot be used this way (a device file, or not permitted)`);
    case 'EXDEV':
      return new InvalidArgumentError(`path ${where} leaves the volume`);
    default:
      return err instanceof Error ? err : new Error(String(err));
  }
}

/** One request against the volume whose files are in `dataDir` (a host path of the agent's). */
export async function volumeContent(
  dataDir: string,
  req: VolumeContentOp,
): Promise<{ entries: VolumeEntryInfo[]; data?: Uint8Array }> {
  const parsed = volumeContentPath(req.path);
  if ('problem' in parsed) throw new InvalidArgumentError(parsed.problem);
  const parts = parsed.parts;
  const rel = parts.join('/');
  const root = openSync(dataDir, constants.O_RDONLY | constants.O_DIRECTORY);
  const fds: number[] = [root];
  /** An O_PATH fd of `p` (components) resolved inside the volume, following symlinks inside it. */
  const resolve = async (p: string[], dirOnly: boolean): Promise<number> => {
    const r = await native().fsAsUser({
      op: 'open',
      path: p.length ? p.join('/') : '.',
      flags: O_PATH | (dirOnly ? constants.O_DIRECTORY : 0),
      dirfd: root,
      inRoot: true,
    });
    if (r.errno !== 0 || r.fd === undefined)
      throw domainError(Object.assign(new Error(), { code: errnoName(r.errno) }), p.join('/'));
    fds.push(r.fd);
    return r.fd;
  };
  try {
    return await run(req, parts, rel, resolve);
  } catch (err) {
    throw err instanceof Error && 'code' in err && typeof (err as NodeJS.ErrnoException).errno === 'number'
      ? domainError(err, rel)
      : err;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  20: 'ENOTDIR',
  21: 'EISDIR',
  40: 'ELOOP',
  36: 'ENAMETOOLONG',
  18: 'EXDEV',
  13: 'EACCES',
};
const errnoName = (n: number) => ERRNO_NAMES[n] ?? `E${n}`;

type Resolve = (p: string[], dirOnly: boolean) => Promise<number>;

async function run(
  req: VolumeContentOp,
  parts: string[],
  rel: string,
  resolve: Resolve,
): Promise<{ entries: VolumeEntryInfo[]; data?: Uint8Array }> {
  const name = parts.at(-1);
  const parentOf = () => resolve(parts.slice(0, -1), true);
  switch (req.op) {
    case 'stat': {
      if (!name) return { entries: [await entryOf(fdPath(await resolve([], true)), '', '/')] };
      return { entries: [await entryOf(fdPath(await parentOf(), name), name, `/${rel}`)] };
    }
    case 'list': {
      const depth = Math.min(Math.max(req.depth || 1, 1), VOLUME_LIMITS.maxListDepth);
      const dir = await resolve(parts, true);
      const entries: VolumeEntryInfo[] = [];
      await listInto(fdPath(dir), rel ? `/${rel}` : '', depth, entries);
      return { entries };
    }
    case 'mkdir': {
      if (!name) {
        if (req.force) return { entries: [await entryOf(fdPath(await resolve([], true)), '', '/')] };
        throw new FailedPreconditionError("path '/' already exists");
      }
      const parent = req.force ? await makeParents(parts.slice(0, -1), resolve, req) : await parentOf();
      const made = await mkdir(fdPath(parent, name), { mode: checkMode(req.mode) ?? 0o755 }).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST' && req.force) return false;
          throw err;
        },
      );
      if (made) await setOwner(fdPath(parent, name), req, true);
      return { entries: [await entryOf(fdPath(parent, name), name, `/${rel}`)] };
    }
    case 'read': {
      const fd = await resolve(parts, false);
      const fh = await open(fdPath(fd), constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new InvalidArgumentError(`path '/${rel}' is not a regular file`);
        if (st.size > VOLUME_LIMITS.maxContentWriteBytes)
          throw new InvalidArgumentError(
            `file '/${rel}' is ${st.size} bytes; at most ${VOLUME_LIMITS.maxContentWriteBytes} are read in one request`,
          );
        return { entries: [], data: await fh.readFile() };
      } finally {
        await fh.close();
      }
    }
    case 'write': {
      if (!name) throw new InvalidArgumentError('cannot write to the volume root');
      const data = req.data ?? new Uint8Array();
      if (data.length > VOLUME_LIMITS.maxContentWriteBytes)
        throw new InvalidArgumentError(
          `at most ${VOLUME_LIMITS.maxContentWriteBytes} bytes are written in one request`,
        );
      const parent = req.force ? await makeParents(parts.slice(0, -1), resolve, req) : await parentOf();
      const target = fdPath(parent, name);
      const existed = await lstat(target).then(
        () => true,
        () => false,
      );
      const mode = checkMode(req.mode) ?? 0o644;
      const fh = await open(
        target,
        constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK,
        mode,
      );
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new InvalidArgumentError(`path '/${rel}' is not a regular file`);
        await fh.truncate(0);
        await fh.writeFile(data);
        await fh.sync();
        await setOwnerFh(fh, req, !existed);
        if (req.mode !== undefined) await fh.chmod(mode);
      } finally {
        await fh.close();
      }
      return { entries: [await entryOf(target, name, `/${rel}`)] };
    }
    case 'remove': {
      if (!name) throw new InvalidArgumentError('cannot remove the volume root');
      const target = fdPath(await parentOf(), name);
      const st = await lstat(target);
      if (st.isDirectory()) await removeTree(target);
      else await unlink(target);
      return { entries: [] };
    }
    case 'chmod': {
      const target = name ? fdPath(await parentOf(), name) : fdPath(await resolve([], true));
      const st = name ? await lstat(target) : await stat(target);
      const mode = checkMode(req.mode);
      if (st.isSymbolicLink()) {
        if (mode !== undefined) throw new InvalidArgumentError(`path '/${rel}' is a symlink; its mode cannot change`);
        await lchown(target, stored(req.uid, 'uid') ?? st.uid, stored(req.gid, 'gid') ?? st.gid);
      } else {
        // A bare /proc/self/fd/<fd> (the root) is a magic link: open it followed.
        const fh = await open(target, constants.O_RDONLY | (name ? constants.O_NOFOLLOW : 0) | constants.O_NONBLOCK);
        try {
          await setOwnerFh(fh, req, false);
          if (mode !== undefined) await fh.chmod(mode);
        } finally {
          await fh.close();
        }
      }
      return { entries: [await entryOf(target, name ?? '', `/${rel}`)] };
    }
    default:
      throw new InvalidArgumentError(`unknown volume content operation '${req.op}'`);
  }
}

/** Makes each missing directory of `dirs` (mkdir -p, inside the volume); returns an O_PATH fd of the last. */
async function makeParents(dirs: string[], resolve: Resolve, req: VolumeContentOp): Promise<number> {
  let fd = await resolve([], true);
  for (const [i, d] of dirs.entries()) {
    const made = await mkdir(fdPath(fd, d), { mode: 0o755 }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return false;
        throw err;
      },
    );
    if (made) await setOwner(fdPath(fd, d), req, true);
    fd = await resolve(dirs.slice(0, i + 1), true);
  }
  return fd;
}

async function setOwner(path: string, req: VolumeContentOp, created: boolean): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_DIRECTORY);
  try {
    await setOwnerFh(fh, req, created);
  } finally {
    await fh.close();
  }
}

/** New files get uid/gid (default root inside); existing ones only what the request names. */
async function setOwnerFh(
  fh: import('node:fs/promises').FileHandle,
  req: VolumeContentOp,
  created: boolean,
): Promise<void> {
  const uid = stored(req.uid, 'uid') ?? (created ? HOST_ID_BASE : undefined);
  const gid = stored(req.gid, 'gid') ?? (created ? HOST_ID_BASE : undefined);
  if (uid === undefined && gid === undefined) return;
  const st = await fh.stat();
  await fh.chown(uid ?? st.uid, gid ?? st.gid);
}

/** `path` is /proc/self/fd/<fd>/<name> (not followed) or a bare /proc/self/fd/<fd> (its file). */
async function entryOf(path: string, name: string, shownPath: string): Promise<VolumeEntryInfo> {
  const st = /^\/proc\/self\/fd\/\d+$/.test(path) ? await stat(path) : await lstat(path);
  return toEntry(st, name, shownPath, st.isSymbolicLink() ? await readlink(path) : '');
}

function toEntry(st: Stats, name: string, path: string, target: string): VolumeEntryInfo {
  return {
    name,
    path,
    type: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'unknown',
    size: st.size,
    mode: st.mode & 0o7777,
    uid: shown(st.uid),
    gid: shown(st.gid),
    atime: st.atimeMs,
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
    target,
  };
}

async function listInto(dir: string, prefix: string, depth: number, out: VolumeEntryInfo[]): Promise<void> {
  for (const n of await readdir(dir)) {
    if (out.length >= VOLUME_LIMITS.maxListEntries) return;
    const p = `${dir}/${n}`;
    const e = await entryOf(p, n, `${prefix}/${n}`);
    out.push(e);
    if (e.type === 'directory' && depth > 1) {
      // Opened without following: a directory swapped for a symlink is not descended into.
      const fd = await open(p, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch(
        () => undefined,
      );
      if (!fd) continue;
      try {
        await listInto(fdPath(fd.fd), e.path, depth - 1, out);
      } finally {
        await fd.close();
      }
    }
  }
}

/** rm -r of the directory at `path`, each level through an fd opened without following symlinks. */
async function removeTree(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    for (const n of await readdir(fdPath(fh.fd))) {
      const child = fdPath(fh.fd, n);
      if ((await lstat(child)).isDirectory()) await removeTree(child);
      else await unlink(child);
    }
  } finally {
    await fh.close();
  }
  await rmdir(path);
}
