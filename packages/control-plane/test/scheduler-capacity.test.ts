// The scheduler and a host's capacity: a host whose agent said it is full is skipped even when it
// is the least loaded, a host that refused this capsule already is not asked again, and when every
// host able to run the capsule is full the error says so (the API's 503 host_full), host by host.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Host, HostLoad } from '../src/db/repositories/hosts.js';
import { chooseHost, NoHostError } from '../src/scheduler/least-loaded.js';

const host = (id: string, full: string | null = null): Host => ({
  id,
  address: `http://127.0.0.1:1/${id}`,
  status: 'online',
  runtimes: ['namespace'],
  cpuCount: 8,
  memoryMb: 16384,
  reported: { capsuleCount: 0, allocatedVcpus: 0, allocatedMemoryMb: 0 },
  capacity: { room: full ? 0 : 10, full },
  lastHeartbeatAt: null,
  createdAt: new Date(0),
  agentSecret: null,
});
const load = (h: Host, capsules: number): HostLoad => ({
  host: h,
  capsules,
  vcpus: capsules,
  memoryMb: capsules * 512,
});
const req = { vcpus: 1, memoryMb: 512, runtime: 'namespace' };

test('a full host is skipped even when it is the least loaded', () => {
  const loads = [load(host('host-a', 'host full: memory: 900 MiB available'), 0), load(host('host-b'), 6)];
  assert.equal(chooseHost(loads, req).host.id, 'host-b');
  // A host that never reported capacity (an older agent) is not treated as full.
  const old = { ...host('host-c'), capacity: { room: null, full: null } };
  assert.equal(chooseHost([load(old, 0), load(host('host-b'), 6)], req).host.id, 'host-c');
});

test('hosts that refused the capsule already are not asked again', () => {
  const loads = [load(host('host-a'), 0), load(host('host-b'), 6)];
  assert.equal(chooseHost(loads, { ...req, excludeHostIds: new Set(['host-a']) }).host.id, 'host-b');
  assert.throws(() => chooseHost(loads, { ...req, excludeHostIds: new Set(['host-a', 'host-b']) }), NoHostError);
});

test('every able host full: the error names each host and why, and is marked full', () => {
  const loads = [
    load(host('host-a', 'host full: this host holds 2 capsules'), 2),
    load(host('host-b', 'host full: tasks: 32000 of 32768'), 9),
  ];
  let caught: unknown;
  try {
    chooseHost(loads, req);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof NoHostError);
  assert.equal(caught.full, true);
  assert.match(
    caught.message,
    /every host that offers the namespace runtime is full: host-a: host full: this host holds 2 capsules; host-b: host full: tasks/,
  );
  // With no runtime asked for, the sentence names no runtime.
  assert.throws(() => chooseHost(loads, { vcpus: 1, memoryMb: 512 }), /^Error: every online host is full: host-a: /);
  // A shape no host can take at all is not "full": it is too big (and not marked full).
  const big = (() => {
    try {
      chooseHost([load(host('host-a'), 0)], { ...req, vcpus: 64 });
    } catch (err) {
      return err as NoHostError;
    }
  })();
  assert.equal(big?.full, false);
});
