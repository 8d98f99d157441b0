// Whether a paused capsule resumes by itself on its next proxied request (E2B's autoResume): the
// sandbox proxy holds that request until the capsule runs again instead of answering 502.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('capsules')
    .addColumn('auto_resume', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('capsules').dropColumn('auto_resume').execute();
}
