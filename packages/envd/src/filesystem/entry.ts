// Builds E2B's EntryInfo for a path: lstat of the entry itself, with type and permission bits of the
// symlink's target for symlinks (as E2B's envd reports them), owner/group names and xattr metadata,
// all looked up as the requesting user (user-fs.ts).

import path from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { type EntryInfoSchema, FileType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { errnoCode, toConnectError } from './errors.js';
import { decodeMetadata, METADATA_PREFIX } from './metadata.js';
import { groupName, ownerName } from './owners.js';
import type { FsEntry, UserFs } from './user-fs.js';

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

/** EntryInfo of p from the native entry (lstat, symlink target, metadata) the user could see. */
export function entryFrom(p: string, e: FsEntry, etcDir: string): EntryInit {
  let type = typeOf(e.mode);
  let perm = e.mode & 0o777;
  let symlinkTarget: string | undefined;
  if ((e.mode & S_IFMT) === S_IFLNK) {
    symlinkTarget = e.target || p;
    type = e.targetStat ? typeOf(e.targetStat.mode) : FileType.UNSPECIFIED;
    perm = e.targetStat ? e.targetStat.mode & 0o777 : 0;
  }
  return {
    name: path.basename(p),
    type,
    path: p,
    size: BigInt(e.size),
    mode: perm,
    permissions: permissionsString(e.mode),
    owner: ownerName(e.uid, etcDir),
    group: groupName(e.gid, etcDir),
    modifiedTime: { seconds: BigInt(e.mtimeSec), nanos: e.mtimeNsec },
    symlinkTarget,
    metadata: decodeMetadata(e.xattrs),
  };
}

/** EntryInfo of p as the user sees it; throws ConnectError not_found when p does not exist. */
export async function entryInfo(p: string, etcDir: string, fs: UserFs): Promise<EntryInit> {
  let e: FsEntry;
  try {
    e = await fs.entry(p, METADATA_PREFIX);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
      throw new ConnectError(`file not found: ${p}`, Code.NotFound);
    }
    throw toConnectError(err, `cannot stat ${p}`);
  }
  return entryFrom(p, e, etcDir);
}
