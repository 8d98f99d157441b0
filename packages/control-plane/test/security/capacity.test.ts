// A tenant that fills the host is refused with a clear error instead of degrading everyone:
// `wrenn up` with a host agent that holds at most 3 capsules (WRENN_MAX_CAPSULES), real `minimal`
// capsules, two teams. Team B (the neighbour) has a capsule; team A (the hostile tenant) creates
// until refused: native 503 host_full naming the limit, E2B 503 in its own shape (the e2b SDK raises
// ServiceBusyError), never a 500 or a hang, while B's capsule keeps working; B's own create is
// refused the same way (no per-team quota is promised: the host is full). The agent reports itself
// full (GetHostInfo, /metrics); freeing a capsule lets the next create succeed at once. With a
// second host the scheduler skips the full one, and a create the full host's agent refuses (the
// control plane's view of it being stale) lands on the other host.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox, ServiceBusyError } from 'e2b';
import { createApiKey } from '../../src/auth/api-keys.js';
import { getCapsule } from '../../src/db/repositories/capsules.js';
import { createHost, getHost, setHostCapacity } from '../../src/db/repositories/hosts.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { HostMonitor } from '../../src/hosts/index.js';
import { type ExtraAgent, type LiveSystem, SHARED_IMAGES, startLive } from '../e2b-live.js';

const SLOT = 8;
const EXTRA_SLOT = 10;

describe('host capacity: a full host refuses creates with a clear error', () => {
  let sys: LiveSystem;
  let extra: ExtraAgent | undefined;
  let keyA = '';
  let keyB = '';
  const call = async (method: string, path: string, body?: unknown, key = keyA) => {
    const res = await fetch(`${sys.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const create = (key = keyA) => call('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 }, key);
  const execTrue = async (id: string, key = keyA) => {
    const r = await call('POST', `/v1/capsules/${id}/exec`, { cmd: 'echo', args: ['alive'] }, key);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.exit_code, 0);
    assert.equal(r.body.stdout.trim(), 'alive');
  };
  const db = () => sys.cp.ctx.database.db;
  const hostA = () => sys.up.agent.hostId;

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES, capacity: { maxCapsules: 3 } });
    const key = async (name: string) =>
      (await createApiKey(db(), { teamId: (await createTeam(db(), { name })).id, name })).key;
    keyA = await key('tenant-a');
    keyB = await key('tenant-b');
  });
  after(async () => {
    await sys?.close();
  });

  let first = '';
  let second = '';
  let neighbour = '';
  it('a tenant creating until refused gets 503 host_full naming the limit; the neighbour keeps working', async () => {
    const b = await create(keyB);
    assert.equal(b.status, 201, JSON.stringify(b.body));
    neighbour = b.body.id;
    // Team A creates as fast as it can (3 at once, then more): the host takes what fits, no more.
    const burst = await Promise.all([create(), create(), create()]);
    const made = burst.filter((r) => r.status === 201);
    const refused = burst.filter((r) => r.status !== 201);
    assert.equal(made.length, 2, JSON.stringify(burst.map((r) => r.status)));
    for (const r of refused) {
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'host_full');
      assert.match(r.body.error.message, /holds 3 capsules.*WRENN_MAX_CAPSULES=3/);
    }
    first = made[0]!.body.id;
    second = made[1]!.body.id;
    assert.equal((await create()).status, 503);
    // The refused capsules never ran: not in A's listing; the host was not degraded.
    const list = await call('GET', '/v1/capsules');
    assert.deepEqual(list.body.capsules.map((c: { id: string }) => c.id).sort(), [first, second].sort());
    await execTrue(neighbour, keyB);
    await execTrue(first);
    await execTrue(second);
    // The neighbour's own create is refused the same way: the host is full, for everyone.
    const bRefused = await create(keyB);
    assert.equal(bRefused.status, 503);
    assert.equal(bRefused.body.error.code, 'host_full');
    await execTrue(neighbour, keyB);
  });

  it('answers the E2B API with 503 in its shape; the e2b SDK raises ServiceBusyError', async () => {
    const res = await fetch(`${sys.url}/sandboxes`, {
      method: 'POST',
      headers: { 'x-api-key': keyA, 'content-type': 'application/json' },
      body: JSON.stringify({ templateID: 'minimal' }),
    });
    assert.equal(res.status, 503);
    const body = (await res.json()) as { code: number; message: string };
    assert.equal(body.code, 503);
    assert.match(body.message, /WRENN_MAX_CAPSULES=3/);
    await assert.rejects(Sandbox.create('minimal', { ...sys.sdk(keyA), timeoutMs: 60_000 }), (err: unknown) => {
      assert.ok(err instanceof ServiceBusyError, `expected ServiceBusyError, got ${String(err)}`);
      assert.match(String((err as Error).message), /WRENN_MAX_CAPSULES=3/);
      return true;
    });
  });

  it('the agent reports itself full in GetHostInfo and /metrics, and the heartbeat records it', async () => {
    const info = await sys.cp.ctx.agents
      .client({ id: hostA(), address: sys.up.agent.url, agentSecret: sys.up.agent.secret })
      .getHostInfo({});
    assert.equal(info.capsulesHeld, 3);
    assert.equal(info.capsuleRoom, 0);
    assert.match(info.full, /WRENN_MAX_CAPSULES=3/);
    const metrics = await (
      await fetch(`${sys.up.agent.url}/metrics`, { headers: { authorization: `Bearer ${sys.up.agent.secret}` } })
    ).text();
    assert.match(metrics, /^wrenn_agent_capsule_room 0$/m);
    assert.match(metrics, /^wrenn_agent_capacity_max\{resource="capsules"\} 3$/m);
    assert.match(metrics, /^wrenn_agent_capacity_used\{resource="agent_fds"\} \d+$/m);
    await new HostMonitor(sys.cp.ctx).checkOnce();
    const host = await getHost(db(), hostA());
    assert.equal(host?.capacity?.room, 0);
    assert.match(host?.capacity?.full ?? '', /WRENN_MAX_CAPSULES=3/);
  });

  it('freeing a capsule lets the next create succeed at once (no heartbeat needed)', async () => {
    assert.equal((await call('DELETE', `/v1/capsules/${first}`)).status, 204);
    assert.equal((await getHost(db(), hostA()))?.capacity?.full, null, 'the destroy cleared the full mark');
    const again = await create();
    assert.equal(again.status, 201, JSON.stringify(again.body));
    first = again.body.id;
    await execTrue(first);
    await execTrue(second);
    await execTrue(neighbour, keyB);
  });

  it('with a second host, the scheduler skips the full one, and a refusal from a stale view moves the capsule', async () => {
    extra = await sys.startExtraAgent(EXTRA_SLOT);
    // Registered as a smaller machine, so by load alone the scheduler would prefer host A.
    await createHost(db(), {
      id: extra.agent.hostId,
      address: extra.agent.url,
      runtimes: ['namespace'],
      cpuCount: 1,
      memoryMb: 4096,
      status: 'online',
      agentSecret: extra.agent.secret,
    });
    await new HostMonitor(sys.cp.ctx).checkOnce();
    // The heartbeat wrote the machine's real figures; put the small ones back.
    await db()
      .updateTable('hosts')
      .set({ cpu_count: 1, memory_mb: 4096 })
      .where('id', '=', extra.agent.hostId)
      .execute();
    assert.match((await getHost(db(), hostA()))?.capacity?.full ?? '', /WRENN_MAX_CAPSULES=3/, 'host A is full again');

    const skipped = await create();
    assert.equal(skipped.status, 201, JSON.stringify(skipped.body));
    assert.equal((await getCapsule(db(), skipped.body.id))?.hostId, extra.agent.hostId, 'placed on the host with room');

    // A stale view: host A's row says it has room, so it is chosen first; its agent refuses and
    // the capsule is placed on the other host in the same request.
    await setHostCapacity(db(), hostA(), { room: 5, full: null });
    // ... and a large machine, so by load the scheduler prefers it.
    await db().updateTable('hosts').set({ cpu_count: 16 }).where('id', '=', hostA()).execute();
    const moved = await create();
    assert.equal(moved.status, 201, JSON.stringify(moved.body));
    const row = await getCapsule(db(), moved.body.id);
    assert.equal(row?.hostId, extra.agent.hostId, 'moved to the host with room after the refusal');
    assert.equal(row?.state, 'running');
    assert.match(
      (await getHost(db(), hostA()))?.capacity?.full ?? '',
      /WRENN_MAX_CAPSULES=3/,
      'the refusal marked host A full',
    );
    await execTrue(moved.body.id);
    await execTrue(second);
    await execTrue(neighbour, keyB);
  });
});
