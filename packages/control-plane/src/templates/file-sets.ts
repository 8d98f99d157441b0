// File sets the e2b SDK uploads for its COPY steps: one tar (usually gzipped) per team and content
// hash, so a rebuild with unchanged files uploads nothing. Kept in the database (migrations/0015),
// not in a replica's data dir: behind a load balancer the upload, the "is it there?" and the build
// reach any replica, and all of them read the same rows. The bytes are 1 MiB chunks written and
// read one at a time (a set may be 256 MiB; no replica holds one in memory). An upload is written
// under its own id, checked (size limits packed and unpacked, entry names relative and free of
// '..', only files, directories and symlinks), and only then named the team's set for the hash, so
// a half-written or bad upload is never used and a refused one leaves nothing.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { InvalidArgumentError } from '@wrenn/protocol';
import { type Kysely, PostgresAdapter, sql } from 'kysely';
import { extract } from 'tar-stream';
import type { Database } from '../db/schema.js';
import { CONTEXT_LIMITS } from './build-context.js';

type Db = Kysely<Database>;
/** Bytes of one stored chunk (the last one of a set may be shorter). */
export const CHUNK_BYTES = 1024 * 1024;

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

/** Whether the team keeps the file set `hash`. */
export async function hasFileSet(db: Db, teamId: string, hash: string): Promise<boolean> {
  const row = await db
    .selectFrom('template_file_sets')
    .select('hash')
    .where('team_id', '=', teamId)
    .where('hash', '=', validateFilesHash(hash))
    .executeTakeFirst();
  return row !== undefined;
}

/** Marks a kept file set used now: its TTL (file-set-gc.ts) counts from here. */
export async function touchFileSet(db: Db, teamId: string, hash: string): Promise<void> {
  await db
    .updateTable('template_file_sets')
    .set({ last_used_at: Date.now() })
    .where('team_id', '=', teamId)
    .where('hash', '=', hash)
    .execute();
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

/** The first chunk of `source` (to tell gzip from plain tar) and the whole stream again. */
async function peek(source: AsyncIterable<Buffer>): Promise<{ head: Buffer; all: AsyncIterable<Buffer> }> {
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  const head = first.done ? Buffer.alloc(0) : first.value;
  async function* all() {
    if (!first.done) yield first.value;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  return { head, all: all() };
}

export const isGzip = (head: Buffer): boolean => head[0] === 0x1f && head[1] === 0x8b;

/** Reads the whole archive and throws InvalidArgumentError for what a file set may not hold. */
export async function checkFileSet(source: AsyncIterable<Buffer>): Promise<{ entries: number; bytes: number }> {
  const { head, all } = await peek(source);
  const gzipped = isGzip(head);
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
  const input = Readable.from(all, { objectMode: false });
  try {
    if (gzipped) await pipeline(input, createGunzip(), ex);
    else await pipeline(input, ex);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(
      `uploaded file set is not a readable tar${gzipped ? '.gz' : ''}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (entries === 0) throw new InvalidArgumentError('uploaded file set is an empty archive');
  return { entries, bytes };
}

/** The chunks of upload `uploadId` in order, fetched one at a time. */
export async function* uploadChunks(db: Db, uploadId: string, count: number): AsyncGenerator<Buffer> {
  for (let seq = 0; seq < count; seq++) {
    const row = await db
      .selectFrom('template_file_chunks')
      .select('data')
      .where('upload_id', '=', uploadId)
      .where('seq', '=', seq)
      .executeTakeFirst();
    if (!row) throw new Error(`stored file set ${uploadId}: chunk ${seq} of ${count} is missing (replaced or removed)`);
    yield Buffer.from(row.data);
  }
}

/** An open read of a kept file set: its size, its bytes, and the end of the read (call it once done). */
export interface FileSetRead {
  bytes: number;
  chunks: () => AsyncGenerator<Buffer>;
  close: () => Promise<void>;
}

/**
 * Deletes upload `uploadId`'s chunks if no set names it and no reader reads it (one statement, so
 * it sees the rows committed when it runs): what a replacement, a reader's end and the GC call.
 */
async function dropIfUnused(db: Db, uploadId: string): Promise<void> {
  await db
    .deleteFrom('template_file_chunks')
    .where('upload_id', '=', uploadId)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('template_file_sets').select('hash').where('upload_id', '=', uploadId))),
    )
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('template_file_readers').select('id').where('upload_id', '=', uploadId))),
    )
    .execute();
}

/**
 * Opens the team's file set `hash` for reading (undefined when the team does not keep it). The
 * read is of the upload the set names now, recorded as a reader row in the same statement that
 * looks the set up (on PostgreSQL with the set row share-locked, so a replacement either commits
 * before and this reads the new upload, or waits and then sees this reader): a replacement
 * (forceUpload) while it reads leaves those chunks alone, and the read gets the whole old set.
 * close() ends the read and deletes the chunks if the set was replaced meanwhile; a reader that
 * never closes (its replica died) is removed by the GC once its build finished (file-set-gc.ts).
 */
export async function openFileSet(
  db: Db,
  teamId: string,
  hash: string,
  buildId: string | null = null,
): Promise<FileSetRead | undefined> {
  validateFilesHash(hash);
  const id = randomUUID();
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await db
    .insertInto('template_file_readers')
    .columns(['id', 'upload_id', 'build_id', 'bytes', 'chunks', 'started_at'])
    .expression(
      db
        .selectFrom('template_file_sets')
        .select([
          sql<string>`cast(${id} as text)`.as('id'),
          'upload_id',
          sql<string | null>`cast(${buildId} as text)`.as('build_id'),
          'bytes',
          'chunks',
          sql<number>`cast(${Date.now()} as bigint)`.as('started_at'),
        ])
        .where('team_id', '=', teamId)
        .where('hash', '=', hash)
        .$if(postgres, (q) => q.forShare()),
    )
    .execute();
  const row = await db
    .selectFrom('template_file_readers')
    .select(['upload_id', 'bytes', 'chunks'])
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  let closed = false;
  return {
    bytes: Number(row.bytes),
    chunks: () => uploadChunks(db, row.upload_id, row.chunks),
    close: async () => {
      if (closed) return;
      closed = true;
      await endRead(db, teamId, hash, id, row.upload_id);
    },
  };
}

/**
 * Ends reader `readerId` of `uploadId` and drops the upload if it is now unused. On PostgreSQL the
 * set row is locked first: a replacement of the set committing at the same moment would otherwise
 * see this reader while this sees the set still naming the upload, and neither would delete it.
 */
async function endRead(db: Db, teamId: string, hash: string, readerId: string, uploadId: string): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await db.transaction().execute(async (trx) => {
      await trx
        .selectFrom('template_file_sets')
        .select('hash')
        .where('team_id', '=', teamId)
        .where('hash', '=', hash)
        .forUpdate()
        .execute();
      await trx.deleteFrom('template_file_readers').where('id', '=', readerId).execute();
      await dropIfUnused(trx, uploadId);
    });
    return;
  }
  // SQLite: each statement runs under the database's one write lock and sees every commit before it.
  await db.deleteFrom('template_file_readers').where('id', '=', readerId).execute();
  await dropIfUnused(db, uploadId);
}

/** Removes what upload `uploadId` wrote. */
export async function dropUploadChunks(db: Db, uploadId: string): Promise<void> {
  await db.deleteFrom('template_file_chunks').where('upload_id', '=', uploadId).execute();
}

/**
 * Stores an upload as the team's file set `hash`: its chunks written under `uploadId` (the size
 * limit enforced while reading), the whole archive checked, then the set row pointed at them in
 * one transaction (a set kept before, e.g. the SDK's forceUpload, is replaced and its chunks
 * removed, unless a build still reads them: openFileSet). Anything that fails removes this
 * upload's chunks: nothing of it is kept.
 */
export async function saveFileSet(
  db: Db,
  teamId: string,
  hash: string,
  uploadId: string,
  body: AsyncIterable<Buffer>,
): Promise<{ bytes: number }> {
  validateFilesHash(hash);
  let size = 0;
  let seq = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const write = async (data: Buffer) => {
    await db.insertInto('template_file_chunks').values({ upload_id: uploadId, seq, data }).execute();
    seq++;
  };
  const flush = async (final: boolean) => {
    while (pendingBytes >= CHUNK_BYTES || (final && pendingBytes > 0)) {
      const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
      const n = Math.min(CHUNK_BYTES, all.length);
      await write(all.subarray(0, n));
      const rest = all.subarray(n);
      pending = rest.length ? [Buffer.from(rest)] : [];
      pendingBytes = rest.length;
    }
  };
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > FILE_SET_LIMITS.maxUploadBytes)
        throw tooLarge(`an uploaded file set may be at most ${FILE_SET_LIMITS.maxUploadBytes} bytes`);
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= CHUNK_BYTES) await flush(false);
    }
    await flush(true);
    if (size === 0) throw new InvalidArgumentError('the upload is empty; send the tar of the files');
    await checkFileSet(uploadChunks(db, uploadId, seq));
    const now = Date.now();
    // PostgreSQL: the row is locked so a concurrent replacement cannot leave its chunks behind.
    const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
    await db.transaction().execute(async (trx) => {
      const old = await trx
        .selectFrom('template_file_sets')
        .select('upload_id')
        .where('team_id', '=', teamId)
        .where('hash', '=', hash)
        .$if(postgres, (q) => q.forUpdate())
        .executeTakeFirst();
      const set = { upload_id: uploadId, bytes: size, chunks: seq, created_at: now, last_used_at: now };
      await trx
        .insertInto('template_file_sets')
        .values({ team_id: teamId, hash, ...set })
        .onConflict((oc) => oc.columns(['team_id', 'hash']).doUpdateSet(set))
        .execute();
      // The old upload's chunks go now unless a build is reading them (then its close() or the GC removes them).
      if (old && old.upload_id !== uploadId) await dropIfUnused(trx, old.upload_id);
    });
    return { bytes: size };
  } catch (err) {
    pending = [];
    await dropUploadChunks(db, uploadId).catch(() => undefined);
    throw err;
  }
}
