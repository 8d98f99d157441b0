// Builds E2B's EntryInfo for a path: lstat of the entry itself, with type and permission bits of the
// symlink's target for symlinks (as E2B's envd reports them), owner/group names and xattr metadata.

import type { BigIntStats } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { type EntryInfoSchema, FileType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { errnoCode, toConnectError } from './errors.js';
import { readMetadata } from './metadata.js';
import { groupName, ownerName } from './owners.js';

export type EntryInit = MessageInitShape<typeof EntryInfoSchema>;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

function typeOf(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return FileType.FILE;
    case S_IFDIR:
      return FileType.DIRECTORY;
    case S_IFLNK:
      return FileType.SYMLINK;
    default:
      return FileType.UNSPECIFIED;
  }
}

/** The mode as text the way Go's os.FileMode prints it ("-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx", "dtrwxrwxrwx"). */
export function permissionsString(mode: number): string {
  const fmt = mode & S_IFMT;
  let kind = '';
  if (fmt === S_IFDIR) kind += 'd';
  if (fmt === S_IFLNK) kind += 'L';
  if (fmt === S_IFCHR || fmt === S_IFBLK) kind += 'D';
  if (fmt === S_IFIFO) kind += 'p';
  if (fmt === S_IFSOCK) kind += 'S';
  if (mode & 0o4000) kind += 'u';
  if (mode & 0o2000) kind += 'g';
  if (fmt === S_IFCHR) kind += 'c';
  if (mode & 0o1000) kind += 't';
  const rwx = 'rwxrwxrwx';
  let perm = '';
  for (let i = 0; i < 9; i++) perm += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return (kind || '-') + perm;
}

function timestamp(st: BigIntStats) {
  return { seconds: st.mtimeNs / 1_000_000_000n, nanos: Number(st.mtimeNs % 1_000_000_000n) };
}

/** EntryInfo of p; throws ConnectError not_found when p does not exist. */
export async function entryInfo(p: string, etcDir: string): Promise<EntryInit> {
  let st: BigIntStats;
  try {
    st = await lstat(p, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
      throw new ConnectError(`file not found: ${p}`, Code.NotFound);
    }
    throw toConnectError(err, `cannot stat ${p}`);
  }
  const mode = Number(st.mode);
  let type = typeOf(mode);
  let perm = mode & 0o777;
  let symlinkTarget: string | undefined;
  if ((mode & S_IFMT) === S_IFLNK) {
    symlinkTarget = await realpath(p).catch(() => p);
    try {
      const target = await stat(symlinkTarget);
      type = typeOf(target.mode);
      perm = target.mode & 0o777;
    } catch {
      type = FileType.UNSPECIFIED;
      perm = 0;
    }
  }
  return {
    name: path.basename(p),
    type,
    path: p,
    size: st.size,
    mode: perm,
    permissions: permissionsString(mode),
    owner: ownerName(Number(st.uid), etcDir),
    group: groupName(Number(st.gid), etcDir),
    modifiedTime: timestamp(st),
    symlinkTarget,
    metadata: await readMetadata(p),
  };
}
