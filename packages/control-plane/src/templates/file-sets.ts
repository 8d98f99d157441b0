// File sets the e2b SDK uploads for its COPY steps: one tar (usually gzipped) per content hash,
// kept per team under <dataDir>/template-files/<team>/<hash>.tar so a rebuild with unchanged
// files uploads nothing. An upload is checked before it is kept: size limits (packed and
// unpacked), entry names relative and free of '..', and only files, directories and symlinks.
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { InvalidArgumentError } from '@wrenn/protocol';
import { extract } from 'tar-stream';
import type { ControlPlaneContext } from '../context.js';
import { CONTEXT_LIMITS } from './build-context.js';

/** E2B's file-set hashes are hex SHA-256. */
const HASH_RE = /^[a-f0-9]{64}$/;
export const FILE_SET_LIMITS = {
  /** Bytes of one upload as sent (gzip or plain tar). */
  maxUploadBytes: CONTEXT_LIMITS.maxBytes,
  /** Bytes of all files once unpacked. */
  maxUnpackedBytes: CONTEXT_LIMITS.maxBytes,
  maxEntries: CONTEXT_LIMITS.maxFiles,
  maxPathLength: CONTEXT_LIMITS.maxPathLength,
} as const;

export function validateFilesHash(hash: string): string {
  if (!HASH_RE.test(hash))
    throw new InvalidArgumentError(`files hash '${hash.slice(0, 80)}' is not a hex SHA-256 (64 characters 0-9 a-f)`);
  return hash;
}

const dirOf = (ctx: ControlPlaneContext, teamId: string) => join(ctx.config.dataDir, 'template-files', teamId);

/** Where a team's file set is kept (whether or not it was uploaded yet). */
export const fileSetPath = (ctx: ControlPlaneContext, teamId: string, hash: string): string =>
  join(dirOf(ctx, teamId), `${validateFilesHash(hash)}.tar`);

export async function hasFileSet(ctx: ControlPlaneContext, teamId: string, hash: string): Promise<boolean> {
  return stat(fileSetPath(ctx, teamId, hash)).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** A bad entry name: absolute, '..' anywhere, NUL, or too long. */
function badName(name: string): string | null {
  if (name.length === 0 || name.length > FILE_SET_LIMITS.maxPathLength || name.includes('\0'))
    return 'is empty, too long or contains NUL';
  if (name.startsWith('/')) return 'is absolute';
  if (name.split('/').includes('..')) return "contains '..'";
  return null;
}

/** Over a size limit: an InvalidArgumentError the API answers with 413. */
const tooLarge = (message: string) => new InvalidArgumentError(message, { code: 'payload_too_large' });

/** Reads the whole archive and throws InvalidArgumentError for what a file set may not hold. */
export async function checkFileSet(path: string): Promise<{ entries: number; bytes: number }> {
  const head = Buffer.alloc(2);
  const fh = await open(path, 'r');
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const gzipped = head[0] === 0x1f && head[1] === 0x8b;
  let entries = 0;
  let bytes = 0;
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    entries++;
    const why = badName(header.name);
    let err: Error | null = null;
    if (why) err = new InvalidArgumentError(`uploaded file set: entry '${header.name.slice(0, 200)}' ${why}`);
    else if (!['file', 'contiguous-file', 'directory', 'symlink'].includes(header.type ?? 'file'))
      err = new InvalidArgumentError(
        `uploaded file set: entry '${header.name}' is a ${header.type}; only files, directories and symlinks can be copied`,
      );
    else if (entries > FILE_SET_LIMITS.maxEntries)
      err = new InvalidArgumentError(`uploaded file set has more than ${FILE_SET_LIMITS.maxEntries} entries`);
    else if ((bytes += header.size ?? 0) > FILE_SET_LIMITS.maxUnpackedBytes)
      err = tooLarge(`uploaded file set unpacks to more than ${FILE_SET_LIMITS.maxUnpackedBytes} bytes`);
    if (err) {
      // The entry stream dies with the extractor: its error is this one, already handled.
      stream.on('error', () => undefined);
      ex.destroy(err);
      return;
    }
    stream.on('end', () => next());
    stream.resume();
  });
  const source = createReadStream(path);
  try {
    if (gzipped) await pipeline(source, createGunzip(), ex);
    else await pipeline(source, ex);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(
      `uploaded file set is not a readable tar${gzipped ? '.gz' : ''}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (entries === 0) throw new InvalidArgumentError('uploaded file set is an empty archive');
  return { entries, bytes };
}

/**
 * Stores an upload under its hash: written to a temporary file (the size limit enforced while
 * reading), checked, then renamed into place, so a half-written or bad upload is never used.
 */
export async function saveFileSet(
  ctx: ControlPlaneContext,
  teamId: string,
  hash: string,
  body: AsyncIterable<Buffer>,
): Promise<{ bytes: number }> {
  const final = fileSetPath(ctx, teamId, hash);
  await mkdir(dirOf(ctx, teamId), { recursive: true, mode: 0o700 });
  const tmp = `${final}.${process.pid}.${Date.now()}.part`;
  let size = 0;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > FILE_SET_LIMITS.maxUploadBytes)
          throw tooLarge(`an uploaded file set may be at most ${FILE_SET_LIMITS.maxUploadBytes} bytes`);
        await fh.write(chunk);
      }
    } finally {
      await fh.close();
    }
    if (size === 0) throw new InvalidArgumentError('the upload is empty; send the tar of the files');
    await checkFileSet(tmp);
    await rename(tmp, final);
    return { bytes: size };
  } finally {
    await rm(tmp, { force: true });
  }
}
