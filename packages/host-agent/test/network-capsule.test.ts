// The per-capsule network for real, as root: namespaces, veths, iptables, tc and the metadata
// server. Traffic goes only to loopback and to namespaces these tests create.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type CapsuleNetwork, NetworkManager, startMetadataServer, stopMetadataServer } from '../src/network/index.js';
import {
  createOutside,
  execFileP,
  freePort,
  httpGetFrom,
  killChildren,
  leftovers,
  OUTSIDE,
  probeFrom,
  probeFromHost,
  removeOutside,
  serverInNetns,
  switchSets,
  TEST_NAMES,
  TEST_POOL,
} from './network-helpers.js';

const isRoot = process.getuid?.() === 0;
let dataDir = '';
let m: NetworkManager;
const hostServers: Server[] = [];

async function managerFor(dir: string, metadataPort: number): Promise<NetworkManager> {
  const mgr = new NetworkManager({ dataDir: dir, pool: TEST_POOL, names: TEST_NAMES, metadataPort });
  await mgr.init();
  return mgr;
}

async function cleanupAll(): Promise<void> {
  killChildren();
  for (const s of hostServers.splice(0)) s.close();
  await stopMetadataServer();
  await m?.removeAll().catch((e) => console.error('network cleanup:', e));
  await removeOutside();
}

before(async () => {
  if (!isRoot) return;
  dataDir = await mkdtemp(join(tmpdir(), 'wrenn-net-test-'));
  // Anything left by an earlier, killed run of this suite goes first.
  m = await managerFor(dataDir, await freePort());
  await m.removeAll();
  await removeOutside();
  m = await managerFor(dataDir, m.metadataPort);
  await startMetadataServer({ manager: m });
});

after(async () => {
  if (!isRoot) return;
  await cleanupAll();
  const left = await leftovers(join(dataDir, 'network', 'slots'));
  await rm(dataDir, { recursive: true, force: true });
  assert.deepEqual(left, [], 'the suite left networking state behind');
});

const opts = { skip: isRoot ? false : 'needs root (namespaces, veth, iptables)' };

test(
  'a capsule namespace gets its address, lo, default route, and the host reaches a server in it',
  opts,
  async (t) => {
    const net = await m.create({ id: 'cl-reach', internet: false });
    t.after(() => m.destroy('cl-reach'));
    assert.equal(net.netnsPath, `/run/netns/${TEST_NAMES.netnsPrefix}cl-reach`);
    assert.match(net.hostIfname, /^wn\d+$/);
    assert.equal(net.prefixLen, 30);

    const { stdout: addrs } = await execFileP('ip', ['-n', net.netnsName, '-j', 'addr', 'show']);
    const links = JSON.parse(addrs) as Array<{
      ifname: string;
      operstate: string;
      flags: string[];
      addr_info: Array<{ family: string; local: string; prefixlen: number }>;
    }>;
    const eth0 = links.find((l) => l.ifname === 'eth0');
    const lo = links.find((l) => l.ifname === 'lo');
    assert.ok(eth0 && lo, 'eth0 and lo exist in the capsule namespace');
    assert.ok(lo.flags.includes('UP'), 'lo is up');
    assert.ok(eth0.addr_info.some((a) => a.family === 'inet' && a.local === net.capsuleIp && a.prefixlen === 30));
    const { stdout: routes } = await execFileP('ip', ['-n', net.netnsName, '-j', 'route', 'show', 'default']);
    assert.equal((JSON.parse(routes) as Array<{ gateway: string }>)[0]?.gateway, net.hostIp);

    // No IPv6 path to the host, and no spoofing another capsule's source address.
    assert.equal((await readFile(`/proc/sys/net/ipv6/conf/${net.hostIfname}/disable_ipv6`, 'utf8')).trim(), '1');
    assert.equal((await readFile(`/proc/sys/net/ipv4/conf/${net.hostIfname}/rp_filter`, 'utf8')).trim(), '1');

    const port = 18080;
    await serverInNetns(net.netnsName, port);
    const r = await probeFromHost(net.capsuleIp, port, 3000);
    assert.deepEqual(
      r,
      { ok: true, data: `hello ${net.hostIp}` },
      'host connects to the capsule, from its host-side address',
    );
  },
);

test('two capsules cannot reach each other, in either direction', opts, async (t) => {
  const a = await m.create({ id: 'cl-iso-a', internet: true });
  t.after(() => m.destroy('cl-iso-a'));
  const b = await m.create({ id: 'cl-iso-b', internet: true });
  t.after(() => m.destroy('cl-iso-b'));
  const port = 18081;
  await Promise.all([serverInNetns(a.netnsName, port), serverInNetns(b.netnsName, port)]);
  // Both servers answer the host: the failures below are the firewall, not a missing server.
  assert.equal((await probeFromHost(a.capsuleIp, port, 3000)).ok, true);
  assert.equal((await probeFromHost(b.capsuleIp, port, 3000)).ok, true);

  const [ab, ba, aToBHost, bToAHost] = await Promise.all([
    probeFrom(a.netnsName, b.capsuleIp, port),
    probeFrom(b.netnsName, a.capsuleIp, port),
    probeFrom(a.netnsName, b.hostIp, port),
    probeFrom(b.netnsName, a.hostIp, port),
  ]);
  assert.equal(ab.ok, false, `a -> b must fail, got ${JSON.stringify(ab)}`);
  assert.equal(ba.ok, false, `b -> a must fail, got ${JSON.stringify(ba)}`);
  assert.equal(aToBHost.ok, false);
  assert.equal(bToAHost.ok, false);
});

test("a capsule cannot reach the host's services, only the metadata endpoint", opts, async (t) => {
  const net = await m.create({ id: 'cl-host', internet: true, metadata: { WRENN_TEMPLATE_ID: 'tpl-x' } });
  t.after(() => m.destroy('cl-host'));
  // Host services: one on 127.0.0.1, one on every address (so also on the host side of the veth).
  const listen = (host: string) =>
    new Promise<number>((resolve) => {
      const s = createServer((c) => c.end('host service\n'));
      hostServers.push(s);
      s.listen(0, host, () => resolve((s.address() as { port: number }).port));
    });
  const loPort = await listen('127.0.0.1');
  const anyPort = await listen('0.0.0.0');
  assert.equal((await probeFromHost('127.0.0.1', loPort)).ok, true, 'the host services run');
  assert.equal((await probeFromHost(net.hostIp, anyPort)).ok, true, 'reachable on the veth address from the host');

  const results = await Promise.all([
    probeFrom(net.netnsName, net.hostIp, anyPort),
    probeFrom(net.netnsName, '127.0.0.1', loPort),
    probeFrom(net.netnsName, net.hostIp, loPort),
    probeFrom(net.netnsName, net.hostIp, m.metadataPort), // the metadata port itself, not via 169.254.169.254
    probeFrom(net.netnsName, OUTSIDE.hostIp, anyPort), // another host address
  ]);
  for (const r of results) assert.equal(r.ok, false, `capsule reached a host service: ${JSON.stringify(results)}`);

  const md = await httpGetFrom(net.netnsName, 'http://169.254.169.254/WRENN_TEMPLATE_ID');
  assert.deepEqual(md, { status: 200, body: 'tpl-x' });
});

test('the metadata endpoint tells each capsule its own ids', opts, async (t) => {
  const a = await m.create({ id: 'cl-md-a', internet: false, metadata: { WRENN_TEMPLATE_ID: 'minimal' } });
  t.after(() => m.destroy('cl-md-a'));
  const b = await m.create({ id: 'cl-md-b', internet: true, metadata: { WRENN_TEMPLATE_ID: 'base' } });
  t.after(() => m.destroy('cl-md-b'));

  assert.deepEqual(await httpGetFrom(a.netnsName, 'http://169.254.169.254/WRENN_SANDBOX_ID'), {
    status: 200,
    body: 'cl-md-a',
  });
  assert.deepEqual(await httpGetFrom(b.netnsName, 'http://169.254.169.254/latest/WRENN_SANDBOX_ID'), {
    status: 200,
    body: 'cl-md-b',
  });
  const json = await httpGetFrom(b.netnsName, 'http://169.254.169.254/', 'application/json');
  assert.equal(json.status, 200);
  assert.deepEqual(JSON.parse(json.body), { WRENN_SANDBOX_ID: 'cl-md-b', WRENN_TEMPLATE_ID: 'base' });
  assert.deepEqual(await httpGetFrom(a.netnsName, 'http://169.254.169.254/'), {
    status: 200,
    body: 'WRENN_SANDBOX_ID\nWRENN_TEMPLATE_ID\n',
  });
  assert.equal((await httpGetFrom(a.netnsName, 'http://169.254.169.254/NOPE')).status, 404);

  await m.setMetadata('cl-md-a', { WRENN_TEMPLATE_ID: 'changed' });
  assert.deepEqual(await httpGetFrom(a.netnsName, 'http://169.254.169.254/WRENN_TEMPLATE_ID'), {
    status: 200,
    body: 'changed',
  });
});

test('internet switch: forwarded traffic is NATed when on and dropped (counted) when off', opts, async (t) => {
  await createOutside();
  t.after(removeOutside);
  const port = 18082;
  await serverInNetns(OUTSIDE.netns, port);
  assert.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), '1');

  const on = await m.create({ id: 'cl-inet-on', internet: true });
  t.after(() => m.destroy('cl-inet-on'));
  const off = await m.create({ id: 'cl-inet-off', internet: false });
  t.after(() => m.destroy('cl-inet-off'));

  const r1 = await probeFrom(on.netnsName, OUTSIDE.ip, port, 3000);
  assert.deepEqual(
    r1,
    { ok: true, data: `hello ${OUTSIDE.hostIp}` },
    'reached, with the source masqueraded to the host',
  );
  const onCounters = await m.egressCounters('cl-inet-on');
  assert.equal(onCounters?.action, 'ACCEPT');
  assert.ok(onCounters.packets > 0);

  const before = await m.egressCounters('cl-inet-off');
  assert.equal(before?.action, 'DROP');
  const r2 = await probeFrom(off.netnsName, OUTSIDE.ip, port, 1000);
  assert.equal(r2.ok, false);
  const afterDrop = await m.egressCounters('cl-inet-off');
  assert.ok(afterDrop!.packets > before!.packets, `the DROP rule counted the attempt: ${JSON.stringify(afterDrop)}`);

  await m.setInternet('cl-inet-off', true);
  assert.equal((await probeFrom(off.netnsName, OUTSIDE.ip, port, 3000)).ok, true, 'switched on');
  await m.setInternet('cl-inet-off', false);
  assert.equal((await probeFrom(off.netnsName, OUTSIDE.ip, port, 1000)).ok, false, 'switched off again');
  assert.equal((await m.get('cl-inet-off'))?.internet, false);
  // Without internet the host still reaches the capsule (envd's path).
  await serverInNetns(off.netnsName, port);
  assert.equal((await probeFromHost(off.capsuleIp, port, 3000)).ok, true);
});

test(
  "internet switch: a capsule borrowing a neighbour's address gets nothing through; no rule per capsule",
  opts,
  async (t) => {
    await createOutside();
    t.after(removeOutside);
    const port = 18083;
    await serverInNetns(OUTSIDE.netns, port);
    const on = await m.create({ id: 'cl-lend', internet: true });
    t.after(() => m.destroy('cl-lend'));
    const off = await m.create({ id: 'cl-borrow', internet: false });
    t.after(() => m.destroy('cl-borrow'));
    // The switch is set membership of the capsule's address: the chains are the same for 2 capsules as for 0.
    const { stdout: rules } = await execFileP('iptables', ['-S']);
    assert.equal(rules.split('\n').filter((l) => l.includes('cl-lend') || l.includes('cl-borrow')).length, 0, rules);
    const { stdout: inet } = await execFileP('ipset', ['list', `${TEST_NAMES.chainPrefix}-INET`]);
    assert.match(inet, new RegExp(`^${on.capsuleIp.replace(/\./g, '\\.')} packets`, 'm'));
    // Stronger than a capsule's root (which has no CAP_NET_ADMIN over its namespace): host root in
    // the internet-off namespace adds the neighbour's address and connects from it.
    await execFileP('ip', ['-n', off.netnsName, 'addr', 'add', `${on.capsuleIp}/32`, 'dev', 'eth0']);
    const script = `const s = require('net').connect({ host: '${OUTSIDE.ip}', port: ${port}, localAddress: '${on.capsuleIp}' });
    s.setTimeout(1500, () => { console.log('timeout'); process.exit(0); });
    s.on('data', (d) => { console.log('got ' + d); process.exit(0); });
    s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
    const { stdout } = await execFileP('ip', ['netns', 'exec', off.netnsName, process.execPath, '-e', script]);
    assert.doesNotMatch(stdout, /got hello/, 'the borrowed address reached the outside');
    // The lender still gets through.
    assert.equal((await probeFrom(on.netnsName, OUTSIDE.ip, port, 3000)).ok, true);
  },
);

test('the egress rate limit and queue length are set, and capsule root cannot change them', opts, async (t) => {
  const net = await m.create({ id: 'cl-rate', internet: false, rateMbit: 50 });
  t.after(() => m.destroy('cl-rate'));
  const { stdout } = await execFileP('tc', ['-n', net.netnsName, 'qdisc', 'show', 'dev', 'eth0']);
  assert.match(stdout, /qdisc tbf .*rate 50Mbit/);
  assert.equal((await readFile(`/sys/class/net/${net.hostIfname}/tx_queue_len`, 'utf8')).trim(), '5000');
  const dflt = await m.create({ id: 'cl-rate-default', internet: false });
  t.after(() => m.destroy('cl-rate-default'));
  assert.match((await execFileP('tc', ['-n', dflt.netnsName, 'qdisc', 'show', 'dev', 'eth0'])).stdout, /rate 200Mbit/);

  // Root of a user namespace inside the capsule's network namespace (how capsules run):
  const attempt = await execFileP('ip', [
    'netns',
    'exec',
    net.netnsName,
    'unshare',
    '--user',
    '--map-root-user',
    'tc',
    'qdisc',
    'del',
    'dev',
    'eth0',
    'root',
  ]).then(
    () => 'changed',
    (e: { stderr?: string }) => e.stderr ?? 'failed',
  );
  assert.match(attempt, /Operation not permitted/);
  assert.match((await execFileP('tc', ['-n', net.netnsName, 'qdisc', 'show', 'dev', 'eth0'])).stdout, /rate 50Mbit/);
  const ipAttempt = await execFileP('ip', [
    'netns',
    'exec',
    net.netnsName,
    'unshare',
    '--user',
    '--map-root-user',
    'ip',
    'addr',
    'add',
    '10.223.0.250/32',
    'dev',
    'eth0',
  ]).then(
    () => 'changed',
    (e: { stderr?: string }) => e.stderr ?? 'failed',
  );
  assert.match(ipAttempt, /Operation not permitted/);
});

test('slots persist: a restarted agent re-adopts known capsules and cleans up the rest', opts, async (t) => {
  const keep = await m.create({ id: 'cl-keep', internet: true });
  t.after(() => m.destroy('cl-keep'));
  const gone = await m.create({ id: 'cl-gone', internet: false });
  t.after(() => m.destroy('cl-gone'));
  // Something of ours that no slot file knows about (e.g. a crash mid-create).
  await execFileP('ip', ['netns', 'add', `${TEST_NAMES.netnsPrefix}orphan`]);
  await execFileP('ip', ['link', 'add', 'wn250', 'type', 'veth', 'peer', 'name', 'wn251']);

  const files = await readdir(join(dataDir, 'network', 'slots'));
  assert.ok(files.includes(`${keep.slot}.json`) && files.includes(`${gone.slot}.json`));

  const restarted = await managerFor(dataDir, m.metadataPort);
  assert.deepEqual((await restarted.list()).map((n: CapsuleNetwork) => n.id).sort(), ['cl-gone', 'cl-keep']);
  const res = await restarted.cleanupStale(['cl-keep']);
  assert.deepEqual(res.removedIds, ['cl-gone']);
  assert.ok(res.removedNetns.includes(`${TEST_NAMES.netnsPrefix}orphan`));
  assert.ok(res.removedLinks.includes('wn250'));
  assert.deepEqual(
    (await restarted.list()).map((n) => n.id),
    ['cl-keep'],
  );
  assert.deepEqual(await restarted.get('cl-keep'), keep);

  const netns = await readdir('/run/netns');
  assert.ok(
    netns.includes(keep.netnsName) &&
      !netns.includes(gone.netnsName) &&
      !netns.includes(`${TEST_NAMES.netnsPrefix}orphan`),
  );
  // The internet switches after the rewrite: the kept capsule's address is in, the other's gone.
  const sets = await switchSets();
  assert.ok(sets.inet.includes(keep.capsuleIp), `cl-keep in the INET set: ${JSON.stringify(sets)}`);
  assert.ok(![...sets.inet, ...sets.noinet].includes(gone.capsuleIp), `cl-gone left in a set: ${JSON.stringify(sets)}`);
  // The kept capsule still works after its firewall was rewritten.
  await serverInNetns(keep.netnsName, 18083);
  assert.equal((await probeFromHost(keep.capsuleIp, 18083, 3000)).ok, true);
});

test('leftovers of a crash under the same names do not block a create', opts, async (t) => {
  await execFileP('ip', ['netns', 'add', `${TEST_NAMES.netnsPrefix}cl-crashed`]);
  const net = await m.create({ id: 'cl-crashed', internet: false });
  t.after(() => m.destroy('cl-crashed'));
  assert.equal(existsNetns(net.netnsName), true);
  const { stdout } = await execFileP('ip', ['-n', net.netnsName, '-br', 'addr', 'show', 'eth0']);
  assert.match(stdout, new RegExp(`${net.capsuleIp.replace(/\./g, '\\.')}/30`));
});

test('destroy is idempotent and removes everything of the capsule', opts, async () => {
  const net = await m.create({ id: 'cl-destroy', internet: true });
  await assert.rejects(m.create({ id: 'cl-destroy', internet: true }), /already has a network/);
  await m.destroy('cl-destroy');
  await m.destroy('cl-destroy');
  await m.destroy('cl-never-existed');
  assert.equal(existsNetns(net.netnsName), false);
  assert.equal((await readdir('/sys/class/net')).includes(net.hostIfname), false);
  assert.doesNotMatch((await execFileP('iptables-save', [])).stdout, /wrenn:cl-destroy/);
  const sets = await switchSets();
  assert.ok(![...sets.inet, ...sets.noinet].includes(net.capsuleIp), 'its address left in a switch set');
  assert.equal(await m.get('cl-destroy'), undefined);
  await assert.rejects(m.create({ id: 'Bad Id', internet: true }), /capsule id "Bad Id" is invalid/);
  await assert.rejects(m.setInternet('cl-destroy', true), /has no network/);
});

test('50 concurrent creates get distinct slots; creation time is reported', opts, async (t) => {
  const ids = Array.from({ length: 50 }, (_, i) => `cl-many-${i}`);
  t.after(() => Promise.all(ids.map((id) => m.destroy(id))));
  const t0 = performance.now();
  const nets = await Promise.all(ids.map((id, i) => m.create({ id, internet: i % 2 === 0 })));
  const parallelMs = performance.now() - t0;
  assert.equal(new Set(nets.map((n) => n.slot)).size, 50);
  assert.equal(new Set(nets.map((n) => n.capsuleIp)).size, 50);
  const netns = await readdir('/run/netns');
  for (const n of nets) assert.ok(netns.includes(n.netnsName), `${n.netnsName} exists`);
  const sets = await switchSets();
  for (const [i, n] of nets.entries())
    assert.ok((i % 2 === 0 ? sets.inet : sets.noinet).includes(n.capsuleIp), `switch of ${n.id}`);
  await Promise.all(ids.map((id) => m.destroy(id)));
  assert.equal((await m.list()).filter((n) => n.id.startsWith('cl-many-')).length, 0);

  // Sequential creates: the per-capsule cost (printed, never asserted).
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const s = performance.now();
    await m.create({ id: `cl-seq-${i}`, internet: true });
    times.push(performance.now() - s);
    await m.destroy(`cl-seq-${i}`);
  }
  times.sort((a, b) => a - b);
  t.diagnostic(
    `createCapsuleNetwork: p50 ${times[5]!.toFixed(1)} ms, max ${times[9]!.toFixed(1)} ms (10 sequential); 50 concurrent in ${parallelMs.toFixed(0)} ms`,
  );
});

test('warm pool: pre-built networks are claimed by creates and refilled in the background', opts, async (t) => {
  t.after(() => m.setWarmPool(0));
  assert.equal(await m.prepareNetworks(2), 2);
  assert.equal(m.warmCount, 2);
  const warmNetns = (await readdir('/run/netns')).filter((n) => n.startsWith(`${TEST_NAMES.netnsPrefix}warm-`));
  assert.equal(warmNetns.length, 2);
  assert.equal(
    (await m.list()).some((n) => n.netnsName.includes('warm-')),
    false,
    'warm networks are not capsules',
  );

  const s = performance.now();
  const net = await m.create({ id: 'cl-warm', internet: true, metadata: { WRENN_TEMPLATE_ID: 'warm-tpl' } });
  const claimMs = performance.now() - s;
  t.after(() => m.destroy('cl-warm'));
  assert.ok(warmNetns.includes(net.netnsName), `${net.netnsName} came from the warm pool`);
  assert.equal(m.warmCount, 1);
  assert.deepEqual(await m.get('cl-warm'), net);
  // A claimed network is a normal capsule network: reachable, metadata, internet rule.
  await serverInNetns(net.netnsName, 18084);
  assert.equal((await probeFromHost(net.capsuleIp, 18084, 3000)).ok, true);
  assert.deepEqual(await httpGetFrom(net.netnsName, 'http://169.254.169.254/WRENN_SANDBOX_ID'), {
    status: 200,
    body: 'cl-warm',
  });
  assert.equal((await m.egressCounters('cl-warm'))?.action, 'ACCEPT');
  // The unclaimed one answers no metadata and forwards nothing (no rule of its own).
  const other = warmNetns.find((n) => n !== net.netnsName)!;
  assert.equal((await httpGetFrom(other, 'http://169.254.169.254/WRENN_SANDBOX_ID')).status, 403);

  await m.setWarmPool(3);
  await m.warmSettled();
  assert.equal(m.warmCount, 3);
  await m.destroy('cl-warm');
  assert.equal(existsNetns(net.netnsName), false);
  await m.setWarmPool(0);
  assert.equal(m.warmCount, 0);
  assert.equal((await readdir('/run/netns')).filter((n) => n.startsWith(`${TEST_NAMES.netnsPrefix}warm-`)).length, 0);
  t.diagnostic(`create from the warm pool: ${claimMs.toFixed(1)} ms`);
});

function existsNetns(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}
