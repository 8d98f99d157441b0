// Hostile probe for the per-namespace socket tables (issue 15; host-tuning.ts): root in capsule A
// holds a few hundred sockets and reads /proc/net/tcp and /proc/net/udp in a tight loop, which on
// a shared host-wide table costs ~6 ms of kernel time per read for every capsule on the host. The
// agent gives each capsule's netns tables of its own: A's netns must report a small positive
// tcp_ehash_entries (negative means "shares the host's"), its /proc/net/tcp must list only its
// own sockets, and neighbour B must keep answering throughout.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { TimeoutAction } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { DEFAULT_NETNS_HASH_ENTRIES } from '../../src/host-tuning.js';
import { leftovers, newDataDir, startTestAgent, type TestAgent, teardown, text } from '../agent-helpers.js';

let dataDir = '';
let t: TestAgent | undefined;
const created: string[] = [];

before(async () => {
  dataDir = newDataDir();
  t = await startTestAgent(dataDir);
});

after(async () => {
  await teardown(t, dataDir);
  const left = leftovers(dataDir, created);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

function agent(): TestAgent {
  if (!t) throw new Error('agent not started');
  return t;
}

async function newCapsule() {
  const { capsule } = await agent().client.createCapsule({
    template: 'minimal',
    timeoutSec: 300,
    timeoutAction: TimeoutAction.DESTROY,
  });
  assert.ok(capsule);
  created.push(capsule.id);
  return capsule;
}

async function sh(
  id: string,
  script: string,
  user: 'root' | 'user' = 'root',
  envs: Record<string, string> = {},
): Promise<string> {
  const r = await agent().client.exec({ capsuleId: id, cmd: '/bin/sh', args: ['-c', script], user, envs });
  assert.equal(r.exitCode, 0, `exit ${r.exitCode}: ${text(r.stderr)}`);
  return text(r.stdout);
}

const LISTENERS = 300;
const HOG_SECONDS = 6;

test('root in a capsule reading /proc/net/tcp in a loop walks a table of its own; the neighbour keeps working', async (tc) => {
  const host = Number(readFileSync('/proc/sys/net/ipv4/tcp_ehash_entries', 'utf8'));
  const a = await newCapsule();
  const b = await newCapsule();

  // Inside A, per network namespace: a positive size is a private table, a negative one the host's.
  const [tcpSize, udpSize] = (
    await sh(a.id, 'cat /proc/sys/net/ipv4/tcp_ehash_entries /proc/sys/net/ipv4/udp_hash_entries')
  )
    .trim()
    .split('\n')
    .map(Number);
  tc.diagnostic(`host tcp_ehash_entries ${host}; inside capsule A: tcp ${tcpSize}, udp ${udpSize}`);
  assert.ok(tcpSize! > 0, `capsule A shares the host's TCP established table (tcp_ehash_entries ${tcpSize})`);
  assert.ok(
    tcpSize! <= DEFAULT_NETNS_HASH_ENTRIES * 2,
    `A's TCP table has ${tcpSize} buckets, expected about ${DEFAULT_NETNS_HASH_ENTRIES}`,
  );
  assert.ok(udpSize! > 0, `capsule A shares the host's UDP table (udp_hash_entries ${udpSize})`);

  // The hog, one process (a shell loop of nc's would meet the capsule's pids limit first): node,
  // as envd runs it, holds LISTENERS TCP listeners and as many UDP sockets, then reads
  // /proc/net/tcp and /proc/net/udp as fast as it can for HOG_SECONDS and reports the reads, the
  // kernel CPU time per read and the TCP lines it saw.
  const hogJs = `const net = require('net'), dgram = require('dgram'), fs = require('fs');
    let up = 0;
    for (let i = 1; i <= ${LISTENERS}; i++) {
      net.createServer().listen(20000 + i, '127.0.0.1', () => ++up === ${LISTENERS * 2} && go());
      dgram.createSocket('udp4').bind(20000 + i, '127.0.0.1', () => ++up === ${LISTENERS * 2} && go());
    }
    function go() {
      const c0 = process.cpuUsage(), end = Date.now() + ${HOG_SECONDS * 1000};
      let n = 0, lines = 0;
      while (Date.now() < end) { lines = fs.readFileSync('/proc/net/tcp', 'utf8').split('\\n').length - 2; fs.readFileSync('/proc/net/udp'); n++; }
      const c = process.cpuUsage(c0);
      console.log('reads ' + n + ' sys-us-per-read ' + (c.system / n).toFixed(1) + ' tcp-lines ' + lines);
      process.exit(0);
    }`;
  const hog = sh(
    a.id,
    `exec $(ls /opt/wrenn/runtime/lib/ld-linux*) --library-path /opt/wrenn/runtime/lib /opt/wrenn/runtime/bin/node -e "$HOG"`,
    'root',
    { HOG: hogJs },
  );

  // Meanwhile the neighbour answers every request (each exec is a full round trip to its envd).
  const neighbour: number[] = [];
  const until = Date.now() + (HOG_SECONDS - 1) * 1000;
  await new Promise((r) => setTimeout(r, 1000));
  while (Date.now() < until) {
    const t0 = performance.now();
    assert.equal(await sh(b.id, 'echo ok'), 'ok\n', 'neighbour B stopped answering');
    neighbour.push(performance.now() - t0);
  }
  const out = await hog;
  const reads = Number(/reads (\d+)/.exec(out)?.[1]);
  const lines = Number(/tcp-lines (\d+)/.exec(out)?.[1]);
  const sysUs = Number(/sys-us-per-read ([\d.]+)/.exec(out)?.[1]);
  neighbour.sort((x, y) => x - y);
  tc.diagnostic(
    `A: ${reads} reads of /proc/net/tcp+udp in ${HOG_SECONDS} s (${sysUs} us of kernel CPU each) with ${lines} TCP lines; ` +
      `B: ${neighbour.length} execs, p50 ${neighbour[neighbour.length >> 1]?.toFixed(1)} ms, max ${neighbour.at(-1)?.toFixed(1)} ms`,
  );
  assert.ok(reads > 0, `the hog loop did not run: ${out}`);
  assert.ok(neighbour.length >= 2, 'the neighbour was not reached while A ran');
  // A's table lists A's own sockets, nothing of B or the host: its listeners, envd's, and the
  // forwarder envd opens on the capsule's address for each port bound on loopback.
  assert.ok(
    lines >= LISTENERS && lines < 2 * LISTENERS + 20,
    `A's /proc/net/tcp has ${lines} lines for ${LISTENERS} listeners of its own`,
  );
  assert.doesNotMatch(
    await sh(a.id, 'cat /proc/net/tcp'),
    new RegExp(
      b.address
        .split('.')
        .map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0'))
        .reverse()
        .join(''),
    ),
    "B's address shows in A's table",
  );

  // The default user cannot change the host-owned namespace's tables (nor can root: no CAP_NET_ADMIN there).
  const w = await agent().client.exec({
    capsuleId: a.id,
    cmd: '/bin/sh',
    args: ['-c', 'echo 0 > /proc/sys/net/ipv4/tcp_child_ehash_entries'],
    user: 'root',
  });
  assert.notEqual(w.exitCode, 0, 'root in a capsule changed tcp_child_ehash_entries');
  assert.equal(await sh(b.id, 'echo ok', 'user'), 'ok\n');
});
