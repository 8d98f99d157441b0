// Writes one uploaded file: parents created and owned by the user, the file truncated or created,
// chowned to the user, streamed from the body, then its `user.e2b.*` metadata replaced.

import { closeSync, createWriteStream, fchown, open as openCb } from 'node:fs';
import { chown, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { Code, ConnectError } from '@connectrpc/connect';
import type { UserInfo } from '../users.js';
import { checkCreate, checkFile, W } from './access.js';
import { errnoCode } from './errors.js';
import { writeMetadata } from './metadata.js';
import { ensureDirs, envdIsRoot, PathError } from './paths.js';

export class UploadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const WRITE_HWM = 1 << 20;
const openAsync = promisify(openCb);
const fchownAsync = promisify(fchown);

export async function writeUploadedFile(
  target: string,
  body: Readable,
  user: UserInfo,
  metadata: Record<string, string>,
): Promise<void> {
  const root = envdIsRoot();
  const existing = await stat(target).catch((err) => {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  });
  if (existing?.isDirectory()) throw new UploadError(400, `path is a directory: ${target}`);
  if (existing) await checkFile(target, existing, user, W, `write ${target}`);
  else await checkCreate(target, user, `create ${target}`);
  await ensureDirs(path.dirname(target), user.uid, user.gid);
  if (existing && root) await chown(target, user.uid, user.gid).catch(() => undefined);
  // A numeric fd and fs.createWriteStream: FileHandle streams cost more CPU per chunk in Node 20.
  const fd = await openAsync(target, 'w', 0o666);
  try {
    if (!existing && root) await fchownAsync(fd, user.uid, user.gid);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  await pipeline(body, createWriteStream('', { fd, highWaterMark: WRITE_HWM }));
  await writeMetadata(target, metadata);
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
