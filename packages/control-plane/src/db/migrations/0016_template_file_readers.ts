// Readers of stored E2B file sets (see templates/file-sets.ts): a build copying a set's bytes into
// its capsule reads one upload's chunks for seconds to minutes, and the SDK's forceUpload may
// replace the set meanwhile. Each read holds a row here naming the upload it reads (and the size
// it read at open); a replacement, the GC and the reader's own end delete an upload's chunks only
// when no set names it and no reader row does, so a replacement never pulls chunks from under a
// build. A reader row whose build has finished (or is gone, or is older than a day) is stale: the
// GC removes it (a replica that died mid-read leaves one).
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('template_file_readers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('upload_id', 'text', (c) => c.notNull())
    .addColumn('build_id', 'text')
    .addColumn('bytes', 'bigint', (c) => c.notNull())
    .addColumn('chunks', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('template_file_readers_upload').on('template_file_readers').column('upload_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('template_file_readers').ifExists().execute();
}
