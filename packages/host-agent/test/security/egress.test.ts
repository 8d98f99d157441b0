// Hostile probe: a capsule (root in its network namespace) tries to reach what is not the
// internet: private and link-local ranges, CGNAT, the host's own addresses, metadata ports other
// than the endpoint, a neighbour capsule. Each must be refused at once (reset / ICMP), while the
// internet, DNS, the metadata endpoint and what the host or the capsule opened keep working.
// Every "remote" address lives in a namespace this test creates and routes to; no packet leaves
// the machine.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { NetworkManager, startMetadataServer, stopMetadataServer } from '../../src/network/index.js';
import {
  execFileP,
  freePort,
  httpGetFrom,
  killChildren,
  leftovers,
  probeFrom,
  probeFromHost,
  serverInNetns,
  TEST_NAMES,
  TEST_POOL,
  udpProbeFrom,
} from '../network-helpers.js';
import {
  createLan,
  HOST_EXTRA,
  LAN,
  LAN_POLICY,
  lanLeftovers,
  LAN_PORT as PORT,
  removeLan,
  startLanServers,
} from './egress-lan.js';

const isRoot = process.getuid?.() === 0;
const opts = { skip: isRoot ? false : 'needs root (namespaces, veth, iptables)' };

let dataDir = '';
let m: NetworkManager;
let hostServer: Server | undefined;
let hostPort = 0;

function newManager(metadataPort: number): NetworkManager {
  return new NetworkManager({
    dataDir,
    pool: TEST_POOL,
    names: TEST_NAMES,
    metadataPort,
    ...LAN_POLICY,
  });
}

before(async () => {
  if (!isRoot) return;
  dataDir = await mkdtemp(join(tmpdir(), 'wrenn-egress-test-'));
  m = newManager(await freePort());
  await m.removeAll(); // whatever an earlier, killed run left
  await removeLan();
  m = newManager(m.metadataPort);
  await m.init();
  await startMetadataServer({ manager: m });
  await createLan();
  await startLanServers();
  // A service of the host on every address (so on the dummy one and the capsules' gateways too).
  hostServer = createServer((c) => c.end('host service\n'));
  hostPort = await new Promise<number>((resolve) =>
    hostServer!.listen(0, '0.0.0.0', () => resolve((hostServer!.address() as { port: number }).port)),
  );
});

after(async () => {
  if (!isRoot) return;
  killChildren();
  hostServer?.close();
  await stopMetadataServer();
  await m?.removeAll().catch((e) => console.error('network cleanup:', e));
  await removeLan();
  const left = [...(await leftovers(join(dataDir, 'network', 'slots'))), ...lanLeftovers()];
  await rm(dataDir, { recursive: true, force: true });
  assert.deepEqual(left, [], 'the suite left networking state behind');
});

test('the stand-ins answer the host directly (so a refusal below is the firewall)', opts, async () => {
  for (const ip of [LAN.ip, LAN.linkLocal, LAN.cgnat, LAN.global]) {
    assert.deepEqual(await probeFromHost(ip, PORT, 3000), { ok: true, data: `hello ${LAN.hostIp}` }, ip);
  }
  assert.equal((await probeFromHost(HOST_EXTRA.ip, hostPort, 3000)).ok, true);
});

test(
  'non-global destinations and the host itself are refused at once; internet, DNS and metadata work',
  opts,
  async (t) => {
    const a = await m.create({ id: 'cl-eg-a', internet: true, metadata: { WRENN_TEMPLATE_ID: 'tpl-eg' } });
    t.after(() => m.destroy('cl-eg-a'));
    const refused = {
      'private (10/8)': [LAN.ip, PORT],
      'link-local other than metadata': [LAN.linkLocal, PORT],
      'CGNAT (100.64/10)': [LAN.cgnat, PORT],
      'the name server on a port other than 53': [LAN.dns, PORT],
      'another address of the host': [HOST_EXTRA.ip, hostPort],
      "the capsule's gateway": [a.hostIp, hostPort],
      'the metadata address on another port': ['169.254.169.254', 81],
    } as const;
    const results = await Promise.all(
      Object.values(refused).map(([ip, port]) => probeFrom(a.netnsName, ip, port, 3000)),
    );
    Object.keys(refused).forEach((what, i) => {
      // ECONNREFUSED is the reset the firewall sends; a timeout would mean a silent drop.
      assert.deepEqual(results[i], { ok: false, error: 'ECONNREFUSED' }, what);
    });
    // UDP to a closed range: ICMP admin-prohibited, reported to the sender at once.
    const udp = await udpProbeFrom(a.netnsName, LAN.ip, 53, 3000);
    assert.equal(udp.ok, false);
    assert.notEqual(udp.error, 'timeout', `UDP to a private address got no ICMP refusal: ${JSON.stringify(udp)}`);

    assert.deepEqual(
      await probeFrom(a.netnsName, LAN.global, PORT, 3000),
      { ok: true, data: `hello ${LAN.hostIp}` },
      'the internet, NATed',
    );
    assert.deepEqual(
      await probeFrom(a.netnsName, LAN.hostAllowed, PORT, 3000),
      { ok: true, data: `hello ${LAN.hostIp}` },
      'a range the host opened',
    );
    assert.deepEqual(
      await probeFrom(a.netnsName, LAN.dns, 53, 3000),
      { ok: true, data: `hello ${LAN.hostIp}` },
      'DNS over TCP',
    );
    assert.deepEqual(
      await udpProbeFrom(a.netnsName, LAN.dns, 53, 3000),
      { ok: true, data: `echo ${LAN.hostIp}` },
      'DNS over UDP',
    );
    assert.deepEqual(await httpGetFrom(a.netnsName, 'http://169.254.169.254/WRENN_TEMPLATE_ID'), {
      status: 200,
      body: 'tpl-eg',
    });
  },
);

test('with internet off, nothing goes out, opened ranges included', opts, async (t) => {
  const b = await m.create({ id: 'cl-eg-off', internet: false });
  t.after(() => m.destroy('cl-eg-off'));
  for (const [ip, port] of [
    [LAN.global, PORT],
    [LAN.hostAllowed, PORT],
    [LAN.dns, 53],
  ] as const) {
    assert.equal((await probeFrom(b.netnsName, ip, port, 1000)).ok, false, `${ip}:${port}`);
  }
  assert.deepEqual(await probeFrom(b.netnsName, LAN.ip, PORT, 3000), { ok: false, error: 'ECONNREFUSED' });
});

test(
  'allowOut opens what the operator lets a capsule open, for that capsule only, and survives a restart',
  opts,
  async (t) => {
    const neighbour = await m.create({ id: 'cl-eg-n', internet: true });
    t.after(() => m.destroy('cl-eg-n'));
    await m.prepareNetworks(1); // the claimed warm network gets the allowOut rules too
    const c = await m.create({ id: 'cl-eg-allow', internet: false, allowOut: ['10.224.9.2', '11.224.9.0/24'] });
    t.after(() => m.destroy('cl-eg-allow'));
    t.after(() => m.setWarmPool(0));
    assert.deepEqual(c.allowOut, ['10.224.9.2/32', '11.224.9.0/24']);

    const check = async (mgr: NetworkManager) => {
      assert.deepEqual(
        await probeFrom(c.netnsName, LAN.ip, PORT, 3000),
        { ok: true, data: `hello ${LAN.hostIp}` },
        'opened private address',
      );
      assert.deepEqual(
        await probeFrom(c.netnsName, LAN.global, PORT, 3000),
        { ok: true, data: `hello ${LAN.hostIp}` },
        'allowed global range, internet off',
      );
      assert.equal(
        (await probeFrom(c.netnsName, LAN.hostAllowed, PORT, 1000)).ok,
        false,
        'internet off still closes the rest',
      );
      assert.deepEqual(
        await probeFrom(c.netnsName, LAN.cgnat, PORT, 3000),
        { ok: false, error: 'ECONNREFUSED' },
        'not in its allowOut',
      );
      assert.deepEqual(
        await probeFrom(neighbour.netnsName, LAN.ip, PORT, 3000),
        { ok: false, error: 'ECONNREFUSED' },
        'the neighbour stays closed',
      );
      assert.equal(
        (await probeFrom(c.netnsName, neighbour.capsuleIp, PORT, 1000)).ok,
        false,
        'capsule -> capsule stays blocked',
      );
      assert.equal((await mgr.get('cl-eg-allow'))?.allowOut.length, 2);
    };
    await serverInNetns(neighbour.netnsName, PORT);
    await check(m);
    // A restarted agent rebuilds every chain from the slot files.
    const restarted = newManager(m.metadataPort);
    await restarted.cleanupStale(['cl-eg-n', 'cl-eg-allow']);
    await check(restarted);
    assert.equal(
      (await probeFrom(neighbour.netnsName, LAN.global, PORT, 3000)).ok,
      true,
      'the neighbour keeps its internet',
    );
  },
);

test('allowOut: 0.0.0.0/0 opens only global destinations; bad or closed entries are refused', opts, async (t) => {
  const d = await m.create({ id: 'cl-eg-all', internet: false, allowOut: ['0.0.0.0/0'] });
  t.after(() => m.destroy('cl-eg-all'));
  assert.equal((await probeFrom(d.netnsName, LAN.global, PORT, 3000)).ok, true);
  assert.deepEqual(await probeFrom(d.netnsName, LAN.ip, PORT, 3000), { ok: false, error: 'ECONNREFUSED' });

  const bad: Array<[unknown, RegExp]> = [
    [['192.168.0.0/16'], /inside 192\.168\.0\.0\/16.*WRENN_EGRESS_OPENABLE_CIDRS/],
    [['169.254.169.254'], /inside 169\.254\.0\.0\/16/],
    [['10.224.0.0/16'], /inside 10\.0\.0\.0\/8/], // wider than the openable 10.224.9.0/24
    [['10.224.9.1/24'], /host bits set: did you mean 10\.224\.9\.0\/24/],
    [['exa mple.com'], /not a domain/],
    [['8.8.8.8:53'], /IPv6 address or has a port/],
    [['1.2.3.4/33'], /not an IPv4 CIDR/],
    [['01.2.3.4'], /not an IPv4 CIDR/],
    ['10.0.0.0/8', /must be a list/],
    [Array.from({ length: 65 }, (_, i) => `11.0.${i}.0/24`), /at most 64/],
  ];
  for (const [allowOut, re] of bad) {
    await assert.rejects(
      m.create({ id: 'cl-eg-bad', internet: true, allowOut: allowOut as string[] }),
      re,
      JSON.stringify(allowOut),
    );
  }
  assert.equal(await m.get('cl-eg-bad'), undefined, 'a refused create leaves no network');
});

test('the closed ranges are a fixed set of shared rules: more capsules add no rule there', opts, async (t) => {
  const count = async () => {
    const { stdout } = await execFileP('iptables-save', ['-t', 'filter']);
    return stdout
      .split('\n')
      .filter((l) => new RegExp(`^-A ${TEST_NAMES.chainPrefix}-(OUT|CLOSED|REFUSE|IN|FWD) `).test(l)).length;
  };
  const one = await m.create({ id: 'cl-eg-c1', internet: true });
  t.after(() => m.destroy('cl-eg-c1'));
  const before = await count();
  for (const id of ['cl-eg-c2', 'cl-eg-c3', 'cl-eg-c4']) {
    await m.create({ id, internet: true });
    t.after(() => m.destroy(id));
  }
  assert.equal(await count(), before);
  assert.ok(one.slot >= 0);
});
