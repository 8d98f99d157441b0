// Hostile probe through the real agent: root and the default user inside namespace capsules try
// the egress that must stay closed (private, link-local, CGNAT, the host's own addresses, a
// neighbour), while a neighbour capsule keeps working and network.allowOut opens exactly what the
// operator lets a capsule open. The "remote" side is the LAN stand-in of egress-lan.ts.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { TimeoutAction } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { leftovers, newDataDir, startTestAgent, type TestAgent, teardown, text } from '../agent-helpers.js';
import { killChildren } from '../network-helpers.js';
import {
  createLan,
  HOST_EXTRA,
  LAN,
  LAN_POLICY,
  LAN_PORT,
  lanLeftovers,
  removeLan,
  startLanServers,
} from './egress-lan.js';

let dataDir = '';
let t: TestAgent | undefined;
const created: string[] = [];
let hostServer: Server | undefined;
let hostPort = 0;

before(async () => {
  dataDir = newDataDir();
  await removeLan();
  await createLan();
  await startLanServers();
  hostServer = createServer((c) => c.end('host service\n'));
  hostPort = await new Promise<number>((resolve) =>
    hostServer!.listen(0, '0.0.0.0', () => resolve((hostServer!.address() as { port: number }).port)),
  );
  t = await startTestAgent(dataDir, LAN_POLICY);
});

after(async () => {
  killChildren();
  hostServer?.close();
  await teardown(t, dataDir);
  await removeLan();
  const left = [...leftovers(dataDir, created), ...lanLeftovers()];
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

function agent(): TestAgent {
  if (!t) throw new Error('agent not started');
  return t;
}

async function newCapsule(opts: { internet?: boolean; allowOut?: string[] } = {}) {
  const { capsule } = await agent().client.createCapsule({
    template: 'minimal',
    timeoutSec: 300,
    timeoutAction: TimeoutAction.DESTROY,
    ...(opts.internet !== undefined ? { internet: opts.internet } : {}),
    ...(opts.allowOut ? { network: { allowOut: opts.allowOut } } : {}),
  });
  assert.ok(capsule);
  created.push(capsule.id);
  return capsule;
}

/** `ip:port` -> what busybox nc got (the greeting, or its error) from inside the capsule. */
async function connectFrom(id: string, targets: string[], user: 'root' | 'user'): Promise<Record<string, string>> {
  const script = targets
    .map((tg) => `echo "${tg} $(timeout 5 nc -w 3 ${tg.replace(':', ' ')} </dev/null 2>&1 | head -1)"`)
    .join('\n');
  const r = await agent().client.exec({ capsuleId: id, cmd: '/bin/sh', args: ['-c', script], user });
  assert.equal(r.exitCode, 0, text(r.stderr));
  return Object.fromEntries(
    text(r.stdout)
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]),
  );
}

const gatewayOf = (address: string) => address.replace(/\d+$/, (n) => String(Number(n) - 1));
const HELLO = `hello ${LAN.hostIp}`; // masqueraded to the host's side of the LAN veth

test('root and the default user are refused at once by every closed destination; the internet and DNS work', async () => {
  const a = await newCapsule();
  const b = await newCapsule(); // the neighbour
  const closed = [
    `${LAN.ip}:${LAN_PORT}`,
    `${LAN.linkLocal}:${LAN_PORT}`,
    `${LAN.cgnat}:${LAN_PORT}`,
    `${LAN.dns}:${LAN_PORT}`,
    `${HOST_EXTRA.ip}:${hostPort}`,
    `${gatewayOf(a.address)}:${hostPort}`,
    `169.254.169.254:81`,
  ];
  const open = [`${LAN.global}:${LAN_PORT}`, `${LAN.hostAllowed}:${LAN_PORT}`, `${LAN.dns}:53`];
  for (const user of ['root', 'user'] as const) {
    const got = await connectFrom(a.id, [...closed, ...open, `${b.address}:49983`], user);
    for (const tg of closed) assert.match(got[tg] ?? '', /Connection refused/, `${user} -> ${tg}: ${got[tg]}`);
    for (const tg of open) assert.equal(got[tg], HELLO, `${user} -> ${tg}`);
    // The neighbour's envd: dropped (no answer at all), as before.
    assert.match(got[`${b.address}:49983`] ?? '', /timed out/i, 'capsule -> capsule');
  }
  const rc = await agent().client.exec({
    capsuleId: a.id,
    cmd: '/bin/sh',
    args: ['-c', 'cat /etc/resolv.conf; wget -q -O- http://169.254.169.254/WRENN_SANDBOX_ID'],
  });
  assert.equal(
    text(rc.stdout),
    `nameserver ${LAN.dns}\n${a.id}`,
    'resolv.conf names the server the firewall opens; metadata answers',
  );
  // The neighbour kept working throughout.
  const nb = await agent().client.exec({
    capsuleId: b.id,
    cmd: '/bin/sh',
    args: ['-c', `echo ok; nc -w 3 ${LAN.global} ${LAN_PORT} </dev/null`],
  });
  assert.equal(text(nb.stdout), `ok\n${HELLO}\n`);
});

test('network.allowOut: opens an openable private address for that capsule only; a closed range is INVALID_ARGUMENT', async () => {
  const c = await newCapsule({ internet: false, allowOut: [LAN.ip] });
  const plain = await newCapsule();
  const got = await connectFrom(c.id, [`${LAN.ip}:${LAN_PORT}`, `${LAN.cgnat}:${LAN_PORT}`], 'root');
  assert.equal(got[`${LAN.ip}:${LAN_PORT}`], HELLO, 'opened, with internet off');
  assert.match(got[`${LAN.cgnat}:${LAN_PORT}`] ?? '', /Connection refused/);
  const other = await connectFrom(plain.id, [`${LAN.ip}:${LAN_PORT}`], 'root');
  assert.match(other[`${LAN.ip}:${LAN_PORT}`] ?? '', /Connection refused/, 'only for the capsule that asked');

  for (const allowOut of [['192.168.1.0/24'], ['169.254.169.254/32'], ['not-a-cidr']]) {
    await assert.rejects(
      agent().client.createCapsule({ template: 'minimal', network: { allowOut } }),
      (err: unknown) =>
        err instanceof ConnectError && err.code === Code.InvalidArgument && /network\.allow_out/.test(err.message),
      JSON.stringify(allowOut),
    );
  }
});
