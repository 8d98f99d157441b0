// Template configuration from Dockerfile builds (environment, working directory, user, start
// command, ready check), one row per template, removed with it. A table of its own rather than
// columns on templates, so template rows written by older code stay valid as they are.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('template_configs')
    .addColumn('template_id', 'text', (c) => c.primaryKey().references('templates.id').onDelete('cascade'))
    /** JSON: { env, workdir, user, start_cmd, ready_cmd } */
    .addColumn('config', 'text', (c) => c.notNull())
    /** Build-cache key of the layer this template is (null for final templates). */
    .addColumn('cache_key', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('template_configs').ifExists().execute();
}
