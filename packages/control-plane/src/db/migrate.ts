// Versioned migrations compiled into the program (no files read at run time), applied at open.
// Kysely's Migrator records applied names in kysely_migration, so reopening applies nothing new.
// Concurrent starts: on PostgreSQL the Migrator takes an advisory lock; on SQLite its lock is a
// no-op (it assumes one connection), so we hold the file's write lock (BEGIN IMMEDIATE) instead
// and the second process waits (busy_timeout), then finds the schema current.
import { type Kysely, type Migration, Migrator, sql } from 'kysely';
import type { SqlDialect } from './dialect.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_template_config.js';
import * as m0003 from './migrations/0003_host_agent_secret.js';
import * as m0004 from './migrations/0004_host_capacity.js';
import * as m0005 from './migrations/0005_auto_resume.js';
import * as m0006 from './migrations/0006_volumes.js';
import * as m0007 from './migrations/0007_public_traffic.js';
import * as m0008 from './migrations/0008_host_draining.js';
import * as m0009 from './migrations/0009_template_tags.js';
import * as m0010 from './migrations/0010_build_shape.js';
import * as m0011 from './migrations/0011_plain_fields.js';
import * as m0012 from './migrations/0012_create_keys.js';
import * as m0013 from './migrations/0013_host_warm_pools.js';
import * as m0014 from './migrations/0014_host_agent_tls.js';
import * as m0015 from './migrations/0015_template_file_sets.js';
import * as m0016 from './migrations/0016_template_file_readers.js';

interface MigrationModule {
  up(db: Kysely<unknown>, dialect: SqlDialect): Promise<void>;
  down?(db: Kysely<unknown>, dialect: SqlDialect): Promise<void>;
}

// Names sort in apply order; append new modules here.
const modules: Record<string, MigrationModule> = {
  '0001_initial': m0001,
  '0002_template_config': m0002,
  '0003_host_agent_secret': m0003,
  '0004_host_capacity': m0004,
  '0005_auto_resume': m0005,
  '0006_volumes': m0006,
  '0007_public_traffic': m0007,
  '0008_host_draining': m0008,
  '0009_template_tags': m0009,
  '0010_build_shape': m0010,
  '0011_plain_fields': m0011,
  '0012_create_keys': m0012,
  '0013_host_warm_pools': m0013,
  '0014_host_agent_tls': m0014,
  '0015_template_file_sets': m0015,
  '0016_template_file_readers': m0016,
};

export function migrationNames(): string[] {
  return Object.keys(modules).sort();
}

export async function migrateToLatest(db: Kysely<unknown>, dialect: SqlDialect): Promise<string[]> {
  const migrations: Record<string, Migration> = {};
  for (const [name, m] of Object.entries(modules)) {
    const down = m.down;
    migrations[name] = {
      up: (d) => m.up(d, dialect),
      ...(down ? { down: (d: Kysely<unknown>) => down(d, dialect) } : {}),
    };
  }
  const sqlite = dialect === 'sqlite';
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    // On SQLite the whole run is one transaction of ours (below).
    disableTransactions: sqlite,
  });
  if (sqlite) await sql`begin immediate`.execute(db);
  let outcome: Awaited<ReturnType<Migrator['migrateToLatest']>>;
  try {
    outcome = await migrator.migrateToLatest();
  } catch (err) {
    outcome = { error: err };
  }
  if (sqlite) await sql.raw(outcome.error ? 'rollback' : 'commit').execute(db);
  const { error, results } = outcome;
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
