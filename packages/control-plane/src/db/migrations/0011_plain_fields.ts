// The capsule contract's plain fields (protocol contract/plain-fields.ts), all in one JSON object:
// a new plain field needs no column of its own, so no migration.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('capsules')
    .addColumn('plain_fields', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('capsules').dropColumn('plain_fields').execute();
}
