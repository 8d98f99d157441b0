// Files of a capsule over envd: streamed reads and writes in chunks of at most 64 KiB,
// directory listing, mkdir and remove.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create } from '@bufbuild/protobuf';
import { type DomainError, type DomainErrorKind, domainError, InvalidArgumentError } from '@wrenn/protocol';
import { type EntryInfo, FileType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { type FileEntry, FileEntrySchema } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { EnvdClient } from '../envd-client/index.js';

export const CHUNK_SIZE = 64 * 1024;

function filesQuery(path: string, user: string): string {
  const q = new URLSearchParams({ path });
  if (user) q.set('username', user);
  return `/files?${q.toString()}`;
}

/** envd's file API statuses as domain kinds (the service's edge turns them into Connect codes). */
const ENVD_STATUS_KIND: Record<number, DomainErrorKind> = {
  400: 'invalid_argument',
  401: 'permission_denied',
  403: 'permission_denied',
  404: 'not_found',
  507: 'resource_exhausted',
};

function httpError(status: number, body: string, path: string): DomainError {
  let message = body;
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? body;
  } catch {
    // plain text body
  }
  const kind: DomainErrorKind = ENVD_STATUS_KIND[status] ?? 'internal';
  return domainError(kind, `${path}: ${message || `envd answered ${status}`}`);
}

/** Yields the file's bytes in chunks of at most CHUNK_SIZE. */
export async function* readFileChunks(
  envd: EnvdClient,
  path: string,
  user: string,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  if (!path) throw new InvalidArgumentError('path is required');
  const req = envd.raw('GET', filesQuery(path, user));
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
    signal.addEventListener('abort', () => req.destroy(new Error('cancelled')), { once: true });
    req.end();
  });
  if (res.statusCode !== 200) {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    throw httpError(res.statusCode ?? 0, Buffer.concat(chunks).toString(), path);
  }
  for await (const chunk of res as AsyncIterable<Buffer>) {
    for (let off = 0; off < chunk.length; off += CHUNK_SIZE) yield chunk.subarray(off, off + CHUNK_SIZE);
  }
}

/** Streams chunks into a file (parents created by envd); returns the byte count. */
export async function writeFileFromChunks(
  envd: EnvdClient,
  path: string,
  user: string,
  chunks: AsyncIterable<Uint8Array>,
): Promise<number> {
  if (!path) throw new InvalidArgumentError('path is required');
  const req = envd.raw('POST', filesQuery(path, user), {
    'content-type': 'application/octet-stream',
    'transfer-encoding': 'chunked',
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  // Handled here so a failure while the body is still being sent is not an unhandled rejection.
  response.catch(() => undefined);
  let written = 0;
  async function* counted() {
    for await (const chunk of chunks) {
      written += chunk.length;
      yield chunk;
    }
  }
  // pipeline ends the request when the chunks end and tears both down if either side fails, so an
  // envd that answers early (or dies) never leaves this waiting for a 'drain' that cannot come.
  const sent = pipeline(Readable.from(counted()), req).then(
    () => undefined,
    (err: unknown) => err,
  );
  const res = await response;
  const body: Buffer[] = [];
  for await (const c of res) body.push(c as Buffer);
  // envd's answer explains a refused upload better than the broken pipe it caused.
  if (res.statusCode !== 200 && res.statusCode !== 204)
    throw httpError(res.statusCode ?? 0, Buffer.concat(body).toString(), path);
  const sendError = await sent;
  if (sendError) throw sendError;
  return written;
}

export function toFileEntry(e: EntryInfo | undefined): FileEntry {
  if (!e) return create(FileEntrySchema, {});
  const type = e.type === FileType.DIRECTORY ? 'dir' : e.type === FileType.SYMLINK ? 'symlink' : 'file';
  return create(FileEntrySchema, {
    name: e.name,
    path: e.path,
    type,
    size: BigInt(e.size),
    mode: e.mode,
    owner: e.owner,
    group: e.group,
    modifiedAt: e.modifiedTime
      ? BigInt(e.modifiedTime.seconds) * 1000n + BigInt(Math.floor(e.modifiedTime.nanos / 1e6))
      : 0n,
    symlinkTarget: e.symlinkTarget ?? '',
  });
}
