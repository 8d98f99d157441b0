// E2B's allowPublicTraffic and maskRequestHost: the token the sandbox proxy demands on a private
// capsule's ports (null: public) and the Host header its servers see (null: the client's).
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('capsules').addColumn('traffic_access_token', 'text').execute();
  await db.schema.alterTable('capsules').addColumn('mask_request_host', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('capsules').dropColumn('mask_request_host').execute();
  await db.schema.alterTable('capsules').dropColumn('traffic_access_token').execute();
}
