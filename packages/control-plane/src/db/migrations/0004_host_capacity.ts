// What each host agent last reported about its capacity: how many more capsules it can take now
// (null: not reported, an older agent) and, when it can take none, why. The scheduler skips a full
// host instead of sending it a create that would be refused.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').addColumn('capsule_room', 'bigint').execute();
  await db.schema.alterTable('hosts').addColumn('full_reason', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('full_reason').execute();
  await db.schema.alterTable('hosts').dropColumn('capsule_room').execute();
}
