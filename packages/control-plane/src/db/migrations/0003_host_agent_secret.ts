// The secret each host agent demands of its callers (host-agent auth/): the control plane keeps it
// per host and presents it on every call. It is a credential to send, so it is stored as given,
// not hashed; null for hosts registered before agents required one.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').addColumn('agent_secret', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('agent_secret').execute();
}
