// Versioned migrations compiled into the program (no files read at run time), applied at open.
// Kysely's Migrator records applied names in kysely_migration and takes a lock, so reopening a
// database (or two control planes starting at once on PostgreSQL) applies each one exactly once.
import { type Kysely, type Migration, Migrator } from 'kysely';
import type { SqlDialect } from './dialect.js';
import * as m0001 from './migrations/0001_initial.js';

interface MigrationModule {
  up(db: Kysely<unknown>, dialect: SqlDialect): Promise<void>;
  down?(db: Kysely<unknown>, dialect: SqlDialect): Promise<void>;
}

// Names sort in apply order; append new modules here.
const modules: Record<string, MigrationModule> = {
  '0001_initial': m0001,
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
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
