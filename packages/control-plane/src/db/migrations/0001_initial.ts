// The first schema. Uses only types both dialects understand alike (text, integer, bigint); the
// one difference is how the audit log's auto-incrementing key is declared.
import { type Kysely, sql } from 'kysely';
import type { SqlDialect } from '../dialect.js';

export async function up(db: Kysely<unknown>, dialect: SqlDialect): Promise<void> {
  await db.schema
    .createTable('teams')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('api_keys_team').on('api_keys').column('team_id').execute();

  await db.schema
    .createTable('hosts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('runtimes', 'text', (c) => c.notNull())
    .addColumn('cpu_count', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'bigint', (c) => c.notNull())
    .addColumn('capsule_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('allocated_vcpus', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('allocated_memory_mb', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('registration_token_hash', 'text')
    .addColumn('last_heartbeat_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('hosts_status').on('hosts').column('status').execute();

  await db.schema
    .createTable('host_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('host_id', 'text')
    .execute();

  await db.schema
    .createTable('capsules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('host_id', 'text')
    .addColumn('template', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('runtime', 'text', (c) => c.notNull())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'bigint', (c) => c.notNull())
    .addColumn('timeout_sec', 'integer', (c) => c.notNull())
    .addColumn('timeout_action', 'text', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('envs', 'text', (c) => c.notNull())
    .addColumn('envd_access_token', 'text')
    .addColumn('client_id', 'text')
    .addColumn('internet', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint')
    .addColumn('stopped_at', 'bigint')
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('capsules_team_state').on('capsules').columns(['team_id', 'state']).execute();
  await db.schema
    .createIndex('capsules_team_created')
    .on('capsules')
    .columns(['team_id', 'created_at', 'id'])
    .execute();
  await db.schema.createIndex('capsules_host_state').on('capsules').columns(['host_id', 'state']).execute();
  await db.schema.createIndex('capsules_state_expires').on('capsules').columns(['state', 'expires_at']).execute();

  await db.schema
    .createTable('capsule_metadata')
    .addColumn('capsule_id', 'text', (c) => c.notNull().references('capsules.id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('capsule_metadata_pk', ['capsule_id', 'key'])
    .execute();
  await db.schema.createIndex('capsule_metadata_key_value').on('capsule_metadata').columns(['key', 'value']).execute();

  await db.schema
    .createTable('templates')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('team_id', 'text', (c) => c.references('teams.id').onDelete('cascade'))
    .addColumn('host_id', 'text')
    .addColumn('parent', 'text')
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'bigint', (c) => c.notNull())
    .addColumn('runtimes', 'text', (c) => c.notNull())
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  // Global built-ins have no team; coalesce makes their names unique too (NULLs never collide in a plain index).
  await db.schema
    .createIndex('templates_scope_name')
    .on('templates')
    .unique()
    .expression(sql`coalesce(team_id, ''), name`)
    .execute();

  await db.schema
    .createTable('template_builds')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('template', 'text', (c) => c.notNull())
    .addColumn('team_id', 'text', (c) => c.references('teams.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('logs', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('template_builds_team_template')
    .on('template_builds')
    .columns(['team_id', 'template'])
    .execute();

  let audit = db.schema.createTable('audit_events');
  audit =
    dialect === 'postgres'
      ? audit.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
      : audit.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
  await audit
    .addColumn('team_id', 'text')
    .addColumn('capsule_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_events_capsule').on('audit_events').columns(['capsule_id', 'id']).execute();
  await db.schema.createIndex('audit_events_team').on('audit_events').columns(['team_id', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    'audit_events',
    'template_builds',
    'templates',
    'capsule_metadata',
    'capsules',
    'host_tokens',
    'hosts',
    'api_keys',
    'teams',
  ]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
