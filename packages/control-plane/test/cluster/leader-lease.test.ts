// Periodic work once across replicas, on a real PostgreSQL: two leases on one database, one holds;
// its connection is killed server-side (as when its process dies) and the other takes over within
// seconds while the first gives up. Two control planes on one database: one runs the state loops,
// and when it closes the other starts them. Capsule changes announced by one replica reach both.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { CapsuleChanges } from '../../src/cluster/capsule-changes.js';
import { LeaderLease, STATE_LOOPS_LOCK_KEY } from '../../src/cluster/leader-lease.js';
import { openDatabase, type WrennDatabase } from '../../src/db/open.js';
import { type RunningControlPlane, startControlPlane } from '../../src/server.js';
import { startTestPostgres, type TestPostgres } from '../pg.js';

const log = pino({ level: 'silent' });

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Backend pid of the session holding the advisory lock `key`, if any. */
async function holderPid(url: string, key: bigint): Promise<number | undefined> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const hi = Number(key >> 32n);
    const lo = Number(key & 0xffffffffn);
    const r = await c.query<{ pid: number }>(
      `select pid from pg_locks where locktype = 'advisory' and granted and classid = $1 and objid = $2`,
      [hi, lo],
    );
    return r.rows[0]?.pid;
  } finally {
    await c.end();
  }
}

async function terminate(url: string, pid: number): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('select pg_terminate_backend($1)', [pid]);
  } finally {
    await c.end();
  }
}

describe('leader lease and capsule changes across replicas (PostgreSQL)', () => {
  let server: TestPostgres;
  let url: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    server = await startTestPostgres();
    url = await server.createDatabase();
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await server?.stop();
  });

  it('on SQLite the lease is always held', async () => {
    const lease = await new LeaderLease({ log }).start();
    assert.equal(lease.held(), true);
    await lease.stop();
    assert.equal(lease.held(), false);
  });

  it('one of two holds; when its connection dies the other takes over and the first gives up', async () => {
    const key = 4242n;
    const a = await new LeaderLease({ databaseUrl: url, key, retryMs: 200, log }).start();
    cleanups.push(() => a.stop());
    const b = await new LeaderLease({ databaseUrl: url, key, retryMs: 200, log }).start();
    cleanups.push(() => b.stop());
    const changes: string[] = [];
    b.onChange((held) => changes.push(`b:${held}`));
    assert.equal(a.held(), true, 'the first to try holds');
    await new Promise((r) => setTimeout(r, 600)); // several retries of b
    assert.equal(b.held(), false, 'the second does not while the first holds');

    const pid = await until('a holder in pg_locks', () => holderPid(url, key));
    await terminate(url, pid);
    await until('b takes the lease', () => (b.held() ? true : undefined));
    await until('a gives it up', () => (a.held() ? undefined : true));
    assert.deepEqual(changes, ['b:true']);
    // a keeps retrying but cannot take it back while b holds.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(a.held(), false);
    assert.equal(b.held(), true);

    // b stops (a replica shut down): a takes over.
    await b.stop();
    await until('a takes the lease back', () => (a.held() ? true : undefined));
  });

  it('two control planes on one database: one runs the state loops; closing it moves them', async () => {
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'wrenn-lease-')));
    cleanups.push(async () => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });
    const start = (dataDir: string) =>
      startControlPlane({
        listen: { host: '127.0.0.1', port: 0 },
        dataDir,
        domain: 'localhost',
        publicUrl: 'http://127.0.0.1',
        databaseUrl: url,
        logLevel: 'silent',
        leaseRetryMs: 200,
      });
    const cps: RunningControlPlane[] = [];
    cps.push(await start(dirs[0] as string));
    cleanups.push(() => cps[0]?.close() ?? Promise.resolve());
    cps.push(await start(dirs[1] as string));
    cleanups.push(() => cps[1]?.close() ?? Promise.resolve());
    const [one, two] = cps as [RunningControlPlane, RunningControlPlane];
    assert.equal(one.lease?.held(), true);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(two.lease?.held(), false);
    assert.ok(await holderPid(url, STATE_LOOPS_LOCK_KEY), 'the lock is visible in pg_locks');
    await one.close();
    await until('the second replica takes over', () => (two.lease?.held() ? true : undefined), 10_000);
  });

  it('a capsule change published by one replica reaches every replica', async () => {
    const dbs: WrennDatabase[] = [];
    for (let i = 0; i < 2; i++) dbs.push(await openDatabase({ databaseUrl: url }));
    cleanups.push(async () => {
      for (const d of dbs) await d.close();
    });
    const seen: string[][] = [[], []];
    const buses = await Promise.all(
      dbs.map((d, i) =>
        new CapsuleChanges({ databaseUrl: url, db: d.db, log, onChange: (id) => seen[i]?.push(id) }).start(),
      ),
    );
    cleanups.push(async () => {
      for (const b of buses) await b.stop();
    });
    assert.ok(buses.every((b) => b.listening()));
    buses[0]?.publish('c-one');
    buses[1]?.publish('c-two');
    await until('both replicas hear both changes', () =>
      seen.every((s) => s.includes('c-one') && s.includes('c-two')) ? true : undefined,
    );

    // A listener whose connection is killed reconnects and hears later changes.
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'listen %' and pid <> pg_backend_pid()`,
    );
    await c.end();
    await until('listeners back', () => (buses.every((b) => b.listening()) ? true : undefined));
    await until('a change after the reconnect arrives', async () => {
      buses[0]?.publish('c-three');
      await new Promise((r) => setTimeout(r, 100));
      return seen[1]?.includes('c-three') ? true : undefined;
    });
  });
});
