// `wrenn host drain`: an admin's wish that a host take no new capsules, kept apart from its
// liveness (status online/unreachable), so a drained host that goes silent and comes back is still
// drained and its capsules are still marked lost and recovered like any other host's.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('hosts')
    .addColumn('draining', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('draining').execute();
}
