// Writes one uploaded file as the requesting user (user-fs.ts): missing parents created as root and
// given to the user, as E2B's envd does (upload-parents.ts; by the user itself when envd is not
// root), the file opened by the user (created, or truncated if the user may write it; a symlink is followed
// only as far as the user could follow it), its `user.e2b.*` metadata replaced through that fd, and
// the body streamed into the same fd. Nothing is checked first and then done as root.

import { close, createWriteStream, fstat } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { Code, ConnectError } from '@connectrpc/connect';
import { errnoCode } from './errors.js';
import { decodeMetadata, METADATA_PREFIX } from './metadata.js';
import { ensureDirs, envdIsRoot, PathError } from './paths.js';
import { type MadeParents, parentsOwnedBy } from './upload-parents.js';
import { O_CREAT, O_NOCTTY, O_NONBLOCK, O_TRUNC, O_WRONLY, type UserFs } from './user-fs.js';

export class UploadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const WRITE_HWM = 1 << 20;
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);

/** Writes the body to target as the user; returns the file's metadata as stored. */
export async function writeUploadedFile(
  target: string,
  body: Readable,
  fs: UserFs,
  metadata: Record<string, string>,
  owner: { uid: number; gid: number },
): Promise<Record<string, string>> {
  let parents: MadeParents | undefined;
  if (envdIsRoot()) parents = await parentsOwnedBy(path.dirname(target), owner);
  else await ensureDirs(path.dirname(target), fs);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a reader (regular files ignore it).
    fd = await fs.open(target, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY | O_NONBLOCK, 0o666);
  } catch (err) {
    // The user may not create the file there after all (e.g. under /root): leave no directories.
    await parents?.undo();
    if (errnoCode(err) === 'EISDIR') throw new UploadError(400, `path is a directory: ${target}`);
    throw err;
  }
  let stored: Record<string, string> = {};
  try {
    if (!(await fstatAsync(fd)).isFile()) throw new UploadError(400, `path is not a regular file: ${target}`);
    stored = await replaceMetadata(fs, fd, target, metadata);
  } catch (err) {
    await closeAsync(fd).catch(() => undefined);
    throw err;
  }
  // A numeric fd and fs.createWriteStream: FileHandle streams cost more CPU per chunk in Node 20.
  await pipeline(body, createWriteStream('', { fd, highWaterMark: WRITE_HWM }));
  return stored;
}

/** Sets exactly `metadata` on the open file; a file system without user xattrs keeps none. */
async function replaceMetadata(
  fs: UserFs,
  fd: number,
  target: string,
  metadata: Record<string, string>,
): Promise<Record<string, string>> {
  const set = Object.entries(metadata).map(([k, v]): [string, string] => [METADATA_PREFIX + k, v]);
  try {
    return decodeMetadata(await fs.fdSetXattrs(fd, METADATA_PREFIX, set, target));
  } catch (err) {
    if (errnoCode(err) === 'EOPNOTSUPP' || errnoCode(err) === 'ENOTSUP') return {};
    throw err;
  }
}

/** HTTP status for a failed upload/download step. */
export function statusOf(err: unknown): number {
  if (err instanceof UploadError) return err.status;
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return 507;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 403;
  if (code === 'ENOENT') return 404;
  if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'ENAMETOOLONG') return 400;
  if (err instanceof ConnectError) {
    const byCode: Partial<Record<Code, number>> = {
      [Code.PermissionDenied]: 403,
      [Code.NotFound]: 404,
      [Code.InvalidArgument]: 400,
      [Code.ResourceExhausted]: 507,
    };
    return byCode[err.code] ?? 500;
  }
  if (err instanceof PathError) return 400;
  return 500;
}
