// Idempotent creates (services/capsules/create-once.ts) against a live `wrenn up`: a replayed
// create with the same Idempotency-Key gets the capsule the first attempt made, also when both
// race; a replay of a create cut off after the host made the capsule adopts it; a replay of one
// cut off before the host got it gives that row up (error, with an event) and makes a new one.
// The cut-off creates are set up by hand (the row put back to `starting`), as a replica killed
// between the host's answer and its own write would leave them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { listAuditEvents } from '../src/db/repositories/audit-events.js';
import { getCapsule, setCapsuleState } from '../src/db/repositories/capsules.js';
import { type LiveSystem, startLive, waitFor } from './e2b-live.js';

describe('idempotent creates (Idempotency-Key) against wrenn up', () => {
  let sys: LiveSystem;
  const db = () => sys.cp.ctx.database.db;
  const post = async (path: string, body: unknown, key?: string) => {
    const r = await fetch(`${sys.url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': sys.adminKey,
        ...(key !== undefined ? { 'idempotency-key': key } : {}),
      },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const createNative = async (key?: string) => {
    const r = await post('/v1/capsules', { template: 'minimal' }, key);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  };
  const kill = (id: string) =>
    fetch(`${sys.url}/v1/capsules/${id}`, { method: 'DELETE', headers: { 'x-api-key': sys.adminKey } });

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 6 });
  });
  after(async () => {
    await sys?.close();
  });

  it('the same key twice, and twice at once, makes one capsule (native and E2B routes)', async () => {
    const key = randomUUID();
    const first = await createNative(key);
    assert.equal(await createNative(key), first, 'a replay answers with the first capsule');
    const [a, b] = await Promise.all([createNative(`${key}-race`), createNative(`${key}-race`)]);
    assert.equal(a, b, 'two attempts at once make one capsule');
    const e2b = await post('/sandboxes', { templateID: 'minimal' }, `${key}-e2b`);
    assert.equal(e2b.status, 201, JSON.stringify(e2b.body));
    const again = await post('/sandboxes', { templateID: 'minimal' }, `${key}-e2b`);
    assert.equal(again.body.sandboxID, e2b.body.sandboxID);
    const other = await createNative();
    assert.notEqual(other, first, 'no key: a new capsule');
    for (const id of [first, a, e2b.body.sandboxID as string, other]) await kill(id);
    // A key whose capsule has ended makes a new one.
    assert.notEqual(await createNative(key), first);
  });

  it('a bad key is refused (400)', async () => {
    const r = await post('/v1/capsules', { template: 'minimal' }, 'has space');
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(String(r.body.message ?? JSON.stringify(r.body)), /Idempotency-Key/);
  });

  it('a replay of a create cut off after the host made the capsule adopts it', async () => {
    const key = randomUUID();
    const id = await createNative(key);
    // As if the replica died after the agent's answer, before recording it running.
    assert.ok(await setCapsuleState(db(), id, 'starting'));
    assert.equal(await createNative(key), id);
    const row = await getCapsule(db(), id);
    assert.equal(row?.state, 'running');
    const events = (await listAuditEvents(db(), { capsuleId: id })).items;
    assert.ok(
      events.some(
        (e) => e.kind === 'capsule.created' && (e.data as Record<string, unknown>).adopted_by_replay === true,
      ),
      `an adoption event; saw ${JSON.stringify(events.map((e) => e.kind))}`,
    );
    await kill(id);
  });

  it('a replay of a create cut off before the host got it gives that row up and makes a new capsule', async () => {
    const key = randomUUID();
    const id = await createNative(key);
    // As if the replica died after writing the row and claiming the key, before the agent made it.
    await sys.up.agent.manager.destroy(id);
    await waitFor('the agent to forget the capsule', async () =>
      sys.up.agent.manager.list().some((c) => c.id === id) ? undefined : true,
    );
    assert.ok(await setCapsuleState(db(), id, 'starting', { error: null }));
    await db()
      .updateTable('capsule_create_keys')
      .set({ created_at: Date.now() - 60_000 })
      .where('capsule_id', '=', id)
      .execute();
    const fresh = await createNative(key);
    assert.notEqual(fresh, id);
    assert.equal((await getCapsule(db(), fresh))?.state, 'running');
    const old = await getCapsule(db(), id);
    assert.equal(old?.state, 'error');
    assert.match(old?.error ?? '', /create cut off/);
    assert.equal(await createNative(key), fresh, 'the key now names the new capsule');
    await kill(fresh);
  });
});
