// A full host refuses creates with a clear error instead of degrading everyone: `wrenn up` with a
// host agent that holds at most 2 capsules (WRENN_MAX_CAPSULES), real `minimal` capsules. The third
// create is refused (native 503 host_full, E2B 503 in its own shape, which the e2b SDK turns into
// ServiceBusyError) while the two capsules keep working; the agent reports itself full
// (GetHostInfo, /metrics); freeing one lets the next create succeed at once. With a second host the
// scheduler skips the full one, and a create the full host's agent refuses (the control plane's view
// of it being stale) lands on the other host.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox, ServiceBusyError } from 'e2b';
import { HostMonitor } from '../src/hosts/index.js';
import { createHost, getHost, setHostCapacity } from '../src/db/repositories/hosts.js';
import { getCapsule } from '../src/db/repositories/capsules.js';
import { SHARED_IMAGES, startLive, type ExtraAgent, type LiveSystem } from './e2b-live.js';

const SLOT = 8;
const EXTRA_SLOT = 10;

describe('host capacity: a full host refuses creates with a clear error', () => {
  let sys: LiveSystem;
  let extra: ExtraAgent | undefined;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sys.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${sys.adminKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const create = () => call('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 });
  const execTrue = async (id: string) => {
    const r = await call('POST', `/v1/capsules/${id}/exec`, { cmd: 'echo', args: ['alive'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.exit_code, 0);
    assert.equal(r.body.stdout.trim(), 'alive');
  };
  const db = () => sys.cp.ctx.database.db;
  const hostA = () => sys.up.agent.hostId;

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES, capacity: { maxCapsules: 2 } });
  });
  after(async () => {
    await sys?.close();
  });

  let first = '';
  let second = '';
  it('takes capsules up to the maximum, then refuses the next with 503 host_full naming the limit', async () => {
    const a = await create();
    const b = await create();
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(b.status, 201, JSON.stringify(b.body));
    first = a.body.id;
    second = b.body.id;
    const refused = await create();
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'host_full');
    assert.match(refused.body.error.message, /holds 2 capsules.*WRENN_MAX_CAPSULES=2/);
    // The refused capsule never ran: not in the listing, and its host was not degraded.
    const list = await call('GET', '/v1/capsules');
    assert.deepEqual(list.body.capsules.map((c: { id: string }) => c.id).sort(), [first, second].sort());
    await execTrue(first);
    await execTrue(second);
  });

  it('answers the E2B API with 503 in its shape; the e2b SDK raises ServiceBusyError', async () => {
    const res = await fetch(`${sys.url}/sandboxes`, {
      method: 'POST',
      headers: { 'x-api-key': sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ templateID: 'minimal' }),
    });
    assert.equal(res.status, 503);
    const body = (await res.json()) as { code: number; message: string };
    assert.equal(body.code, 503);
    assert.match(body.message, /WRENN_MAX_CAPSULES=2/);
    await assert.rejects(Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 60_000 }), (err: unknown) => {
      assert.ok(err instanceof ServiceBusyError, `expected ServiceBusyError, got ${String(err)}`);
      assert.match(String((err as Error).message), /WRENN_MAX_CAPSULES=2/);
      return true;
    });
  });

  it('the agent reports itself full in GetHostInfo and /metrics, and the heartbeat records it', async () => {
    const info = await sys.cp.ctx.agents.client({ id: hostA(), address: sys.up.agent.url, agentSecret: sys.up.agent.secret }).getHostInfo({});
    assert.equal(info.capsulesHeld, 2);
    assert.equal(info.capsuleRoom, 0);
    assert.match(info.full, /WRENN_MAX_CAPSULES=2/);
    const metrics = await (await fetch(`${sys.up.agent.url}/metrics`, { headers: { authorization: `Bearer ${sys.up.agent.secret}` } })).text();
    assert.match(metrics, /^wrenn_agent_capsule_room 0$/m);
    assert.match(metrics, /^wrenn_agent_capacity_max\{resource="capsules"\} 2$/m);
    assert.match(metrics, /^wrenn_agent_capacity_used\{resource="agent_fds"\} \d+$/m);
    await new HostMonitor(sys.cp.ctx).checkOnce();
    const host = await getHost(db(), hostA());
    assert.equal(host?.capacity?.room, 0);
    assert.match(host?.capacity?.full ?? '', /WRENN_MAX_CAPSULES=2/);
  });

  it('freeing a capsule lets the next create succeed at once (no heartbeat needed)', async () => {
    assert.equal((await call('DELETE', `/v1/capsules/${first}`)).status, 204);
    assert.equal((await getHost(db(), hostA()))?.capacity?.full, null, 'the destroy cleared the full mark');
    const again = await create();
    assert.equal(again.status, 201, JSON.stringify(again.body));
    first = again.body.id;
    await execTrue(first);
    await execTrue(second);
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
    await db().updateTable('hosts').set({ cpu_count: 1, memory_mb: 4096 }).where('id', '=', extra.agent.hostId).execute();
    assert.match((await getHost(db(), hostA()))?.capacity?.full ?? '', /WRENN_MAX_CAPSULES=2/, 'host A is full again');

    const skipped = await create();
    assert.equal(skipped.status, 201, JSON.stringify(skipped.body));
    assert.equal((await getCapsule(db(), skipped.body.id))?.hostId, extra.agent.hostId, 'placed on the host with room');

    // A stale view: host A's row says it has room, so it is chosen first; its agent refuses and
    // the capsule is placed on the other host in the same request.
    await setHostCapacity(db(), hostA(), { room: 5, full: null });
    const moved = await create();
    assert.equal(moved.status, 201, JSON.stringify(moved.body));
    const row = await getCapsule(db(), moved.body.id);
    assert.equal(row?.hostId, extra.agent.hostId, 'moved to the host with room after the refusal');
    assert.equal(row?.state, 'running');
    assert.match((await getHost(db(), hostA()))?.capacity?.full ?? '', /WRENN_MAX_CAPSULES=2/, 'the refusal marked host A full');
    await execTrue(moved.body.id);
    await execTrue(second);
  });
});
