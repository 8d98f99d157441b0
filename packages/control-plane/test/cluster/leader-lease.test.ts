// Periodic work once across replicas, on a real PostgreSQL: two leases on one database, one holds;
// its connection is killed server-side and exactly one holds again; a holder process is SIGKILLed
// and the other takes over within seconds. Two control planes on one database: one runs the state loops,
// and when it closes the other starts them. Capsule changes announced by one replica reach both.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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

  it('one of two holds; when its connection dies exactly one holds again, on a new session', async () => {
    const key = 4242n;
    const a = await new LeaderLease({ databaseUrl: url, key, retryMs: 200, log }).start();
    cleanups.push(() => a.stop());
    const b = await new LeaderLease({ databaseUrl: url, key, retryMs: 200, log }).start();
    cleanups.push(() => b.stop());
    assert.equal(a.held(), true, 'the first to try holds');
    await new Promise((r) => setTimeout(r, 600)); // several retries of b
    assert.equal(b.held(), false, 'the second does not while the first holds');

    const pid = await until('a holder in pg_locks', () => holderPid(url, key));
    await terminate(url, pid);
    // a notices its session is gone and races b for the lock: either may win, never both.
    await until('a new holder', async () => {
      const now = await holderPid(url, key);
      return now !== undefined && now !== pid && a.held() !== b.held() ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 600));
    assert.notEqual(a.held(), b.held(), 'exactly one holds');

    // The holder stops (a replica shut down): the other takes over.
    const [holder, other] = a.held() ? [a, b] : [b, a];
    await holder.stop();
    await until('the other takes the lease', () => (other.held() ? true : undefined));
  });

  it('a holder whose process is SIGKILLed loses the lease to the other within seconds', async () => {
    const key = 4343n;
    const leaseModule = new URL('../../src/cluster/leader-lease.js', import.meta.url).href;
    const script = `
      import pino from 'pino';
      const { LeaderLease } = await import(${JSON.stringify(leaseModule)});
      const l = await new LeaderLease({ databaseUrl: process.env.URL, key: ${key}n, retryMs: 200, log: pino({ level: 'silent' }) }).start();
      process.stdout.write(l.held() ? 'held\\n' : 'not\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, URL: url },
      cwd: new URL('../../', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(async () => child.kill('SIGKILL'));
    const first = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
      child.once('exit', (code) => reject(new Error(`lease child exited (${code})`)));
    });
    assert.equal(first, 'held', 'the child process takes the lease');
    const b = await new LeaderLease({ databaseUrl: url, key, retryMs: 200, log }).start();
    cleanups.push(() => b.stop());
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(b.held(), false);
    child.kill('SIGKILL');
    await until('b takes the lease of the killed process', () => (b.held() ? true : undefined));
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
