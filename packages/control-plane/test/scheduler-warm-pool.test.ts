// The scheduler and the hosts' warm pools: among hosts with room, one holding a ready capsule of
// the template (in the shape and runtime the create asks for) comes first even when it is the
// more loaded; a full or drained host does not, nor does a pool of another template, shape or
// runtime, nor a create that cannot claim one (no `warm`: an egress policy or volumes). Capsules of
// the template placed on a host since its last report count as taken (pickHost over SQLite and
// PostgreSQL), and the host repository keeps each host's report and an admin's sizes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createCapsule,
  createHost,
  createTeam,
  getHost,
  type Host,
  type HostLoad,
  recordHeartbeat,
  setHostWarmPoolTarget,
  type WarmPoolReport,
} from '../src/db/index.js';
import { chooseHost, pickHost, warmReady } from '../src/scheduler/least-loaded.js';
import { forEachDialect } from './db-helpers.js';

const pool = (template: string, ready: number, extra: Partial<WarmPoolReport> = {}): WarmPoolReport => ({
  template,
  ready,
  target: Math.max(ready, 1),
  runtime: 'namespace',
  vcpus: 1,
  memoryMb: 512,
  ...extra,
});

const host = (id: string, pools: WarmPoolReport[] = [], extra: Partial<Host> = {}): Host => ({
  id,
  address: `http://127.0.0.1:1/${id}`,
  status: 'online',
  runtimes: ['namespace'],
  cpuCount: 8,
  memoryMb: 16384,
  reported: { capsuleCount: 0, allocatedVcpus: 0, allocatedMemoryMb: 0 },
  capacity: { room: 10, full: null },
  lastHeartbeatAt: null,
  createdAt: new Date(0),
  agentSecret: null,
  warmPools: { at: new Date(0), pools },
  ...extra,
});
const load = (h: Host, capsules: number, warmTaken?: number): HostLoad => ({
  host: h,
  capsules,
  vcpus: capsules,
  memoryMb: capsules * 512,
  ...(warmTaken !== undefined ? { warmTaken } : {}),
});
const warm = { agentTemplate: 'minimal', template: 'minimal' };
const req = { vcpus: 1, memoryMb: 512, warm };

test('a host with a ready capsule of the template wins over a less loaded one without', () => {
  const loads = [load(host('host-a'), 0), load(host('host-b', [pool('minimal', 1)]), 5)];
  assert.equal(chooseHost(loads, req).host.id, 'host-b');
  // Without `warm` (the create has an egress policy or volumes) the least loaded host wins.
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 512 }).host.id, 'host-a');
});

test('among hosts with a ready capsule, the least loaded; with none ready, the least loaded of all', () => {
  const loads = [
    load(host('host-a'), 0),
    load(host('host-b', [pool('minimal', 2)]), 6),
    load(host('host-c', [pool('minimal', 1)]), 3),
  ];
  assert.equal(chooseHost(loads, req).host.id, 'host-c');
  const empty = [load(host('host-a'), 2), load(host('host-b', [pool('minimal', 0)]), 1)];
  assert.equal(chooseHost(empty, req).host.id, 'host-b', 'a pool with none ready counts for nothing');
});

test('a pool of another template, shape or runtime is not a reason to go there', () => {
  const other = (p: WarmPoolReport) => [load(host('host-a'), 0), load(host('host-b', [p]), 5)];
  assert.equal(chooseHost(other(pool('base', 3)), req).host.id, 'host-a');
  assert.equal(chooseHost(other(pool('minimal', 3, { vcpus: 2 })), req).host.id, 'host-a');
  assert.equal(chooseHost(other(pool('minimal', 3, { memoryMb: 1024 })), req).host.id, 'host-a');
  assert.equal(chooseHost(other(pool('minimal', 3, { runtime: 'qemu' })), req).host.id, 'host-a');
  // The agent's name of a team template differs from the team's name: the agent's is matched.
  const team = { vcpus: 1, memoryMb: 512, warm: { agentTemplate: 'tpl-abc', template: 'my-app' } };
  assert.equal(chooseHost(other(pool('my-app', 3)), team).host.id, 'host-a');
  assert.equal(chooseHost(other(pool('tpl-abc', 3)), team).host.id, 'host-b');
});

test('a full host hands out the pooled capsule it holds; a drained or excluded one is still skipped', () => {
  const warmHost = (extra: Partial<Host>) => [
    load(host('host-a'), 4),
    load(host('host-b', [pool('minimal', 2)], extra), 0),
  ];
  const full = { capacity: { room: 0, full: 'host full: this host holds 3 capsules' } };
  assert.equal(chooseHost(warmHost(full), req).host.id, 'host-b', 'the claim needs no room');
  assert.equal(chooseHost(warmHost(full), { vcpus: 1, memoryMb: 512 }).host.id, 'host-a', 'a cold create does');
  assert.equal(chooseHost(warmHost(full), { ...req, vcpus: 2 }).host.id, 'host-a', 'so does another shape');
  assert.equal(chooseHost(warmHost({ draining: true }), req).host.id, 'host-a');
  assert.equal(
    chooseHost(warmHost({}), { ...req, excludeHostIds: new Set(['host-b']) }).host.id,
    'host-a',
    'a host that refused the capsule',
  );
});

test('capsules placed since the report count as taken', () => {
  const h = host('host-b', [pool('minimal', 2)]);
  assert.equal(warmReady(load(h, 0, 1), req, 'namespace'), 1);
  assert.equal(warmReady(load(h, 0, 2), req, 'namespace'), 0);
  assert.equal(warmReady(load(h, 0, 5), req, 'namespace'), 0);
  const loads = [load(host('host-a'), 0), load(h, 2, 2)];
  assert.equal(chooseHost(loads, req).host.id, 'host-a', 'both taken: least loaded');
  // A host that never reported (an older agent, or none yet) has no pool.
  assert.equal(warmReady(load(host('host-c', [], { warmPools: null }), 0), req, 'namespace'), 0);
});

forEachDialect('pickHost with warm pools', (_dialect, fresh) => {
  test('a heartbeat records the pools; creates since it count as taken; the admin sizes are kept', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const a = await createHost(db, {
      id: 'host-a',
      address: 'http://10.0.0.1:5007',
      runtimes: ['namespace'],
      cpuCount: 8,
      memoryMb: 16384,
    });
    const b = await createHost(db, {
      id: 'host-b',
      address: 'http://10.0.0.2:5007',
      runtimes: ['namespace'],
      cpuCount: 8,
      memoryMb: 16384,
    });
    assert.equal(a.warmPools, null, 'no report before the first heartbeat');
    // host-b carries more load than host-a, but keeps one ready `minimal`.
    const place = (hostId: string, template = 'minimal') =>
      createCapsule(db, {
        teamId: team.id,
        hostId,
        template,
        runtime: 'namespace',
        vcpus: 1,
        memoryMb: 512,
        timeoutSec: 300,
      });
    await place(b.id, 'base');
    const at = new Date(Date.now() - 1);
    const beat = await recordHeartbeat(db, b.id, { warmPools: { at, pools: [pool('minimal', 1)] } });
    assert.deepEqual(beat?.warmPools, { at, pools: [pool('minimal', 1)] });
    await recordHeartbeat(db, a.id, { warmPools: { at, pools: [] } });

    assert.equal((await pickHost(db, req)).host.id, 'host-b', 'the ready capsule wins');
    assert.equal(
      (await pickHost(db, { vcpus: 1, memoryMb: 512 })).host.id,
      'host-a',
      'no claim possible: least loaded',
    );
    // One `minimal` placed there after the report took it: the next goes by load.
    await place(b.id);
    assert.equal((await pickHost(db, req)).host.id, 'host-a');
    // Until a newer report says the pool has one ready again.
    await recordHeartbeat(db, b.id, { warmPools: { at: new Date(Date.now() + 1), pools: [pool('minimal', 1)] } });
    assert.equal((await pickHost(db, req)).host.id, 'host-b');
    // A heartbeat without a report (an older agent's) keeps the last one.
    await recordHeartbeat(db, b.id, { capsuleCount: 2 });
    assert.equal((await getHost(db, b.id))?.warmPools?.pools.length, 1);

    assert.equal((await getHost(db, b.id))?.warmPoolTarget, null);
    assert.deepEqual((await setHostWarmPoolTarget(db, b.id, { minimal: 2 }))?.warmPoolTarget, { minimal: 2 });
    assert.equal((await setHostWarmPoolTarget(db, b.id, null))?.warmPoolTarget, null);
    assert.equal(await setHostWarmPoolTarget(db, 'host-none', { minimal: 1 }), null);
  });
});
