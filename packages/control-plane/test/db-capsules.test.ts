// The capsules repository on SQLite and PostgreSQL alike.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Kysely } from 'kysely';
import {
  type Capsule,
  capsuleIdsUsingTemplate,
  countCapsulesByState,
  createCapsule,
  createTeam,
  type Database,
  DbError,
  deleteCapsule,
  getCapsule,
  listCapsules,
  listExpiredCapsules,
  type NewCapsule,
  setCapsuleMetadata,
  setCapsuleState,
  updateCapsule,
} from '../src/db/index.js';
import { isCapsuleId } from '../src/ids.js';
import { forEachDialect } from './db-helpers.js';

function spec(teamId: string, extra: Partial<NewCapsule> = {}): NewCapsule {
  return {
    teamId,
    hostId: 'host-a',
    template: 'base',
    runtime: 'namespace',
    vcpus: 1,
    memoryMb: 512,
    timeoutSec: 300,
    ...extra,
  };
}

async function listAll(
  db: Kysely<Database>,
  filter: Parameters<typeof listCapsules>[1],
  limit: number,
): Promise<Capsule[]> {
  const out: Capsule[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page = await listCapsules(db, { ...filter, limit, cursor });
    assert.ok(page.items.length <= limit);
    out.push(...page.items);
    cursor = page.nextCursor;
    if (!cursor) return out;
  }
  throw new Error('pagination did not end');
}

forEachDialect('capsules', (_dialect, fresh) => {
  test('create stores every field and round-trips it', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const before = Date.now();
    const c = await createCapsule(
      db,
      spec(team.id, {
        metadata: { app: 'web', 'user.id': '42' },
        envs: { FOO: 'bar' },
        envdAccessToken: 'tok',
        clientId: 'client-1',
        internet: false,
        timeoutAction: 'pause',
        vcpus: 2,
        memoryMb: 2048,
      }),
    );
    assert.ok(isCapsuleId(c.id));
    assert.equal(c.state, 'starting');
    assert.equal(c.internet, false);
    assert.equal(c.timeoutAction, 'pause');
    assert.ok(c.expiresAt && c.expiresAt.getTime() >= before + 300_000);
    assert.equal(c.stoppedAt, null);
    assert.deepEqual(await getCapsule(db, c.id), c);
    const other = await createCapsule(db, spec(team.id, { expiresAt: null }));
    assert.equal(other.expiresAt, null);
    assert.equal(other.internet, true);
    assert.equal(other.timeoutAction, 'kill');
    assert.deepEqual((await getCapsule(db, other.id))?.expiresAt, null);
  });

  test("get with a team only finds that team's capsules", async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const b = await createTeam(db, { name: 'b' });
    const c = await createCapsule(db, spec(a.id));
    assert.equal((await getCapsule(db, c.id, a.id))?.id, c.id);
    assert.equal(await getCapsule(db, c.id, b.id), null);
    assert.equal(await getCapsule(db, 'cl-missing'), null);
  });

  test('rejects invalid input with a clear message', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    await assert.rejects(createCapsule(db, spec(team.id, { vcpus: 0 })), /vcpus must be a positive integer/);
    await assert.rejects(createCapsule(db, spec(team.id, { state: 'flying' as never })), /state must be one of/);
    await assert.rejects(
      createCapsule(db, spec(team.id, { metadata: { a: 1 as never } })),
      /metadata.a must be a string/,
    );
    await assert.rejects(listCapsules(db, { limit: 0 }), /limit must be an integer from 1/);
    await assert.rejects(
      listCapsules(db, { cursor: 'garbage' }),
      (e: unknown) => e instanceof DbError && e.code === 'invalid_argument',
    );
  });

  test('list filters by team, host, state and metadata', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const b = await createTeam(db, { name: 'b' });
    const web = await createCapsule(db, spec(a.id, { metadata: { app: 'web', env: 'prod' } }));
    const webDev = await createCapsule(db, spec(a.id, { metadata: { app: 'web', env: 'dev' }, hostId: 'host-b' }));
    const db1 = await createCapsule(db, spec(a.id, { metadata: { app: 'db' } }));
    const foreign = await createCapsule(db, spec(b.id, { metadata: { app: 'web', env: 'prod' } }));
    await setCapsuleState(db, web.id, 'running');
    await setCapsuleState(db, db1.id, 'paused');

    const ids = async (f: Parameters<typeof listCapsules>[1]) =>
      (await listCapsules(db, f)).items.map((c) => c.id).sort();
    assert.deepEqual(await ids({ teamId: a.id }), [web.id, webDev.id, db1.id].sort());
    assert.deepEqual(await ids({ teamId: a.id, state: 'running' }), [web.id]);
    assert.deepEqual(await ids({ teamId: a.id, state: ['running', 'paused'] }), [web.id, db1.id].sort());
    assert.deepEqual(await ids({ teamId: a.id, state: [] }), []);
    assert.deepEqual(await ids({ teamId: a.id, metadata: { app: 'web' } }), [web.id, webDev.id].sort());
    assert.deepEqual(await ids({ teamId: a.id, metadata: { app: 'web', env: 'prod' } }), [web.id]);
    assert.deepEqual(await ids({ teamId: a.id, metadata: { app: 'nope' } }), []);
    assert.deepEqual(await ids({ metadata: { env: 'prod' } }), [web.id, foreign.id].sort());
    assert.deepEqual(await ids({ hostId: 'host-b' }), [webDev.id]);
    const py = await createCapsule(db, spec(a.id, { template: 'python' }));
    assert.deepEqual(await ids({ teamId: a.id, template: 'python' }), [py.id]);
    assert.deepEqual(await capsuleIdsUsingTemplate(db, a.id, 'python', ['starting']), [py.id]);
    assert.deepEqual(await capsuleIdsUsingTemplate(db, a.id, 'python', ['running']), []);
    assert.deepEqual(await capsuleIdsUsingTemplate(db, b.id, 'python', ['starting']), []);
    await assert.rejects(ids({ state: 'bogus' as never }), /state filter must be one of/);
  });

  test('pagination returns every row once, newest first, even for rows created in the same millisecond', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const other = await createTeam(db, { name: 'o' });
    const created: Capsule[] = [];
    for (let i = 0; i < 23; i++)
      created.push(await createCapsule(db, spec(team.id, { metadata: { n: String(i % 2) } })));
    await createCapsule(db, spec(other.id));
    // Force ties on created_at so the id tie-breaker is exercised.
    await db
      .updateTable('capsules')
      .set({ created_at: 1_700_000_000_000 })
      .where('team_id', '=', team.id)
      .where('id', '<', created[10]!.id)
      .execute();

    const all = await listAll(db, { teamId: team.id }, 5);
    assert.equal(all.length, 23);
    assert.deepEqual(all.map((c) => c.id).sort(), created.map((c) => c.id).sort());
    for (let i = 1; i < all.length; i++) {
      const p = all[i - 1]!;
      const c = all[i]!;
      assert.ok(
        p.createdAt > c.createdAt || (p.createdAt.getTime() === c.createdAt.getTime() && p.id > c.id),
        'newest first',
      );
    }
    const even = await listAll(db, { teamId: team.id, metadata: { n: '0' } }, 4);
    assert.equal(even.length, 12);
    const one = await listCapsules(db, { teamId: team.id, limit: 23 });
    assert.equal(one.items.length, 23);
    assert.equal(one.nextCursor, null);
  });

  test('state changes: compare-and-set, stoppedAt, error, placement', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const c = await createCapsule(db, spec(team.id));
    const running = await setCapsuleState(db, c.id, 'running', { from: ['starting'] });
    assert.equal(running?.state, 'running');
    assert.ok(running!.updatedAt >= c.updatedAt);
    assert.equal(
      await setCapsuleState(db, c.id, 'running', { from: ['starting'] }),
      null,
      'CAS must fail when state differs',
    );
    assert.equal((await getCapsule(db, c.id))?.state, 'running');
    const moved = await setCapsuleState(db, c.id, 'hibernated', { hostId: null, expiresAt: null });
    assert.equal(moved?.hostId, null);
    assert.equal(moved?.expiresAt, null);
    assert.equal(moved?.stoppedAt, null);
    const failed = await setCapsuleState(db, c.id, 'error', { error: 'agent lost' });
    assert.equal(failed?.error, 'agent lost');
    assert.ok(failed?.stoppedAt instanceof Date);
    assert.equal(await setCapsuleState(db, 'cl-none', 'running'), null);
    assert.equal(await setCapsuleState(db, c.id, 'running', { from: [] }), null);
  });

  test('updateCapsule and setCapsuleMetadata', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const c = await createCapsule(db, spec(team.id, { metadata: { a: '1' } }));
    const exp = new Date(Date.now() + 3_600_000);
    const u = await updateCapsule(db, c.id, {
      hostId: 'host-z',
      expiresAt: exp,
      timeoutSec: 3600,
      timeoutAction: 'hibernate',
      envdAccessToken: null,
    });
    assert.equal(u?.hostId, 'host-z');
    assert.equal(u?.expiresAt?.getTime(), exp.getTime());
    assert.equal(u?.timeoutSec, 3600);
    assert.equal(u?.timeoutAction, 'hibernate');
    assert.equal(await updateCapsule(db, 'cl-none', { timeoutSec: 1 }), null);
    await assert.rejects(
      updateCapsule(db, c.id, { timeoutAction: 'explode' as never }),
      /timeoutAction must be one of/,
    );

    const m = await setCapsuleMetadata(db, c.id, { b: '2' });
    assert.deepEqual(m?.metadata, { b: '2' });
    assert.equal((await listCapsules(db, { metadata: { a: '1' } })).items.length, 0);
    assert.equal((await listCapsules(db, { metadata: { b: '2' } })).items.length, 1);
    assert.equal(await setCapsuleMetadata(db, 'cl-none', {}), null);
  });

  test('expired capsules, counts by state, delete', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const now = Date.now();
    const past = await createCapsule(db, spec(team.id, { expiresAt: new Date(now - 1000), state: 'running' }));
    const pastPaused = await createCapsule(db, spec(team.id, { expiresAt: new Date(now - 1000), state: 'paused' }));
    await createCapsule(db, spec(team.id, { expiresAt: new Date(now + 60_000), state: 'running' }));
    await createCapsule(db, spec(team.id, { expiresAt: null, state: 'running' }));
    assert.deepEqual(
      (await listExpiredCapsules(db, new Date(now))).map((c) => c.id),
      [past.id],
    );
    assert.deepEqual(await countCapsulesByState(db, { teamId: team.id }), { running: 3, paused: 1 });
    assert.equal(await deleteCapsule(db, pastPaused.id), true);
    assert.equal(await deleteCapsule(db, pastPaused.id), false);
    assert.equal(await getCapsule(db, pastPaused.id), null);
    const left = await db.selectFrom('capsule_metadata').selectAll().where('capsule_id', '=', pastPaused.id).execute();
    assert.deepEqual(left, []);
  });
});
