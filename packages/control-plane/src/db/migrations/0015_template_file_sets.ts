// E2B template COPY file sets kept in the database, so every control-plane replica reads the set
// another replica received (before: a file per set in the receiving replica's data dir). A set is
// a row naming the upload that holds its bytes, in 1 MiB chunks (BLOB on SQLite, bytea on
// PostgreSQL) read and written one at a time, so no replica ever holds a whole set in memory.
// template_uploads records each upload link used (one-use across replicas) and is the name of the
// chunks an upload writes until it is checked and becomes the set. cluster_keys holds keys every
// replica shares (the upload links' HMAC key), created once by whichever replica comes first.
import type { Kysely } from 'kysely';
import type { SqlDialect } from '../dialect.js';

export async function up(db: Kysely<unknown>, dialect: SqlDialect): Promise<void> {
  await db.schema
    .createTable('cluster_keys')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('template_uploads')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('team_id', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('used_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('template_uploads_expires_at').on('template_uploads').column('expires_at').execute();
  await db.schema
    .createTable('template_file_sets')
    .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('upload_id', 'text', (c) => c.notNull())
    .addColumn('bytes', 'bigint', (c) => c.notNull())
    .addColumn('chunks', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('template_file_sets_pk', ['team_id', 'hash'])
    .execute();
  await db.schema.createIndex('template_file_sets_upload').on('template_file_sets').column('upload_id').execute();
  await db.schema
    .createTable('template_file_chunks')
    .addColumn('upload_id', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('data', dialect === 'postgres' ? 'bytea' : 'blob', (c) => c.notNull())
    .addPrimaryKeyConstraint('template_file_chunks_pk', ['upload_id', 'seq'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['template_file_chunks', 'template_file_sets', 'template_uploads', 'cluster_keys'])
    await db.schema.dropTable(t).ifExists().execute();
}
