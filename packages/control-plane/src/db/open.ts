// Opens the control plane's database: PostgreSQL when a DATABASE_URL is given, otherwise an
// embedded SQLite file <dataDir>/wrenn.db in WAL mode. Migrations are applied before returning.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import type { SqlDialect } from './dialect.js';
import { migrateToLatest } from './migrate.js';
import type { Database } from './schema.js';

export interface OpenDatabaseOptions {
  /** Directory for the SQLite file; required unless databaseUrl is set. */
  dataDir?: string;
  /** postgres:// or postgresql:// URL; when set, PostgreSQL is used instead of SQLite. */
  databaseUrl?: string;
  /** Maximum PostgreSQL connections (default 10). */
  poolSize?: number;
}

export interface WrennDatabase {
  db: Kysely<Database>;
  dialect: SqlDialect;
  /** Names of migrations applied by this open (empty when the schema was already current). */
  appliedMigrations: string[];
  close(): Promise<void>;
}

export const SQLITE_FILE_NAME = 'wrenn.db';
// Several processes (e.g. the CLI and `wrenn up`) may share the file: wait for locks instead of
// failing. better-sqlite3 waits synchronously, so keep the wait short once running.
const SQLITE_START_BUSY_TIMEOUT_MS = 30_000;
const SQLITE_BUSY_TIMEOUT_MS = 5_000;

// BIGINT (int8, oid 20) arrives from pg as a string by default; every BIGINT here is a millisecond
// timestamp, a size or a count, all far below 2^53, so numbers are exact and match SQLite.
const INT8_OID = 20;
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export async function openDatabase(opts: OpenDatabaseOptions): Promise<WrennDatabase> {
  const url = opts.databaseUrl?.trim();
  const wrenn = url ? openPostgres(url, opts.poolSize ?? 10) : openSqlite(opts.dataDir);
  try {
    wrenn.appliedMigrations = await migrateToLatest(wrenn.db as Kysely<unknown>, wrenn.dialect);
    if (wrenn.dialect === 'sqlite') await sql.raw(`pragma busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`).execute(wrenn.db);
  } catch (err) {
    await wrenn.close().catch(() => {});
    throw err;
  }
  return wrenn;
}

function openSqlite(dataDir: string | undefined): WrennDatabase {
  if (!dataDir) throw new Error('openDatabase: set dataDir (for the SQLite file) or databaseUrl (for PostgreSQL)');
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, SQLITE_FILE_NAME);
  let sqlite: SqliteDatabase.Database;
  try {
    // Generous lock wait while starting: other processes may be migrating the same file.
    sqlite = new SqliteDatabase(file, { timeout: SQLITE_START_BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new Error(
      `cannot open SQLite database ${file}: ${(err as Error).message}; check the path and its permissions`,
      {
        cause: err,
      },
    );
  }
  sqlite.pragma('journal_mode = WAL');
  // WAL makes NORMAL durable against application crashes; only a power loss can drop the last commits.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { db, dialect: 'sqlite', appliedMigrations: [], close: () => db.destroy() };
}

function openPostgres(url: string, poolSize: number): WrennDatabase {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new Error(
      'DATABASE_URL must start with postgres:// or postgresql:// (e.g. postgres://user:pass@host:5432/wrenn)',
    );
  }
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types: pgTypes });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: 'postgres', appliedMigrations: [], close: () => db.destroy() };
}
