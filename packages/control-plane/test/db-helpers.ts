// Runs a suite once per SQL dialect: SQLite in a temp dir, and PostgreSQL on a throwaway server
// (one per test file, started on first use). Each test gets its own empty, migrated database.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, type TestContext } from 'node:test';
import { openDatabase, type SqlDialect, type WrennDatabase } from '../src/db/index.js';
import { startTestPostgres, type TestPostgres } from './pg.js';

export const DIALECTS: readonly SqlDialect[] = ['sqlite', 'postgres'];

let server: Promise<TestPostgres> | undefined;
let hookRegistered = false;

function postgresServer(): Promise<TestPostgres> {
  server ??= startTestPostgres();
  return server;
}

export function tempDir(t: TestContext, prefix = 'wrenn-db-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Fresh {
  wrenn: WrennDatabase;
  /** A temp dir (the SQLite file's home on sqlite). */
  dataDir: string;
  /** Opens the same database again (to test reopening); closed after the test. */
  reopen(): Promise<WrennDatabase>;
}

/** Where a new, empty database would live (not opened yet): a temp dir, plus a URL on postgres. */
export async function freshTarget(
  t: TestContext,
  dialect: SqlDialect,
): Promise<{ dataDir: string; databaseUrl?: string }> {
  const dataDir = tempDir(t);
  if (dialect === 'sqlite') return { dataDir };
  return { dataDir, databaseUrl: await (await postgresServer()).createDatabase() };
}

export async function freshDatabase(t: TestContext, dialect: SqlDialect): Promise<Fresh> {
  const { dataDir, databaseUrl } = await freshTarget(t, dialect);
  const opened: WrennDatabase[] = [];
  t.after(async () => {
    for (const w of opened.reverse()) await w.close();
  });
  const open = async () => {
    const w = await openDatabase({ dataDir, databaseUrl });
    opened.push(w);
    return w;
  };
  return { wrenn: await open(), dataDir, reopen: open };
}

/** Declares `suite` once per dialect, as `<name> [sqlite]` and `<name> [postgres]`. */
export function forEachDialect(
  name: string,
  suite: (dialect: SqlDialect, fresh: (t: TestContext) => Promise<Fresh>) => void,
): void {
  if (!hookRegistered) {
    hookRegistered = true;
    after(async () => {
      if (server) await (await server).stop();
    });
  }
  for (const dialect of DIALECTS) {
    describe(`${name} [${dialect}]`, () => suite(dialect, (t) => freshDatabase(t, dialect)));
  }
}
