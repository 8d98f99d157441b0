// Idempotent creates: a create that carries an Idempotency-Key (a client's, or one the load
// balancer adds before it may replay the request on another replica) claims (team, key) here
// first, so a replay finds the capsule the first attempt made instead of making a second one.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('capsule_create_keys')
    .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('capsule_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('capsule_create_keys_pk', ['team_id', 'key'])
    .execute();
  await db.schema
    .createIndex('capsule_create_keys_created_at')
    .on('capsule_create_keys')
    .column('created_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('capsule_create_keys').ifExists().execute();
}
