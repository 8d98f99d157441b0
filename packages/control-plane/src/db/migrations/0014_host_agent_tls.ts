// The TLS certificate a host agent registered (PEM, its leaf), which the control plane pins on every
// connection to that agent (host-agent auth/pinned-tls.ts): no CA is involved, so this column is
// the whole trust. Public, so stored as given; null for an agent that serves plain HTTP/h2c.
// (0013, the warm pools, was written at the same time in another work tree.)
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').addColumn('agent_tls_cert', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('agent_tls_cert').execute();
}
