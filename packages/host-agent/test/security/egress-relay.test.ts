// Hostile probes of the egress proxy's hand-off to the native relay: once a connection is judged
// (SNI or Host) its bytes move on the relay thread, so what the proxy no longer reads must not open
// what the policy forbids. Run as root inside capsule network namespaces: a second request on a
// kept-alive HTTP connection naming another Host (sequential and pipelined), a Host inside TLS that
// differs from the SNI, a ClientHello split into one-byte segments; a capsule's relayed connections
// end with its network; a neighbour without a policy keeps working throughout. Every "internet"
// host is in a namespace this test creates (198.18.7.0/24); no packet leaves the machine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { relayStats } from '@wrenn/native';
import { INET } from '../../src/testing/egress-internet.js';
import { nodeInNetns } from '../../src/testing/netns.js';
import { execFileP } from '../network-helpers.js';
import { egressSuite, rootOnly } from './egress-suite.js';

const opts = rootOnly;
const suite = egressSuite('er');
const capsule = suite.capsule;

/** Runs a node script inside `netns` and parses the JSON it prints. */
async function inNetns<T>(netns: string, script: string, ...args: string[]): Promise<T> {
  const r = await execFileP('ip', ['netns', 'exec', netns, process.execPath, '-e', script, ...args], {
    timeout: 20_000,
  });
  return JSON.parse(r.stdout) as T;
}

/** Requests on ONE kept-alive connection to argv[1]:80, each with the Host of argv[2..]. */
const KEEPALIVE = `const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const [ip, ...hosts] = process.argv.slice(1);
(async () => {
  const out = [];
  for (const host of hosts) {
    out.push(await new Promise((resolve) => {
      const req = http.get({ host: ip, port: 80, path: '/', agent, headers: { host } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body, reused: req.reusedSocket }));
      });
      req.on('error', (e) => resolve({ status: 0, body: e.code || e.message, reused: req.reusedSocket }));
    }));
  }
  console.log(JSON.stringify(out));
  agent.destroy();
})();`;

/** Two requests written in one segment (pipelined) to argv[1]:80; prints all that came back. */
const PIPELINED = `const s = require('net').connect(80, process.argv[1]);
const [, first, second] = process.argv.slice(1);
let out = '';
const done = () => { console.log(JSON.stringify(out)); process.exit(0); };
s.on('connect', () => s.write('GET / HTTP/1.1\\r\\nHost: ' + first + '\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: ' + second + '\\r\\n\\r\\n'));
s.on('data', (c) => (out += c));
s.on('end', done);
s.on('error', done);
setTimeout(done, 5000);`;

/**
 * HTTPS to argv[1]:443 with SNI argv[2], the ClientHello sent one byte per TCP segment; then
 * GET / with Host argv[3]. Prints { ok, status, body } or { ok: false, error }.
 */
const SPLIT_HELLO = `const net = require('net'), tls = require('tls'), fs = require('fs'), { Duplex } = require('stream');
const [ip, name, host, caFile] = process.argv.slice(1);
const print = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
const up = net.connect(443, ip);
up.setNoDelay(true);
up.on('error', (e) => print({ ok: false, error: e.code || e.message }));
up.on('connect', () => {
  let hello = true;
  const d = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      if (!hello) return void up.write(chunk, cb);
      hello = false;
      let i = 0;
      const next = () => {
        if (i >= chunk.length) return cb();
        up.write(chunk.subarray(i, ++i));
        setTimeout(next, 1);
      };
      next();
    },
    final(cb) { up.end(); cb(); },
  });
  up.on('data', (c) => d.push(c));
  up.on('end', () => d.push(null));
  const s = tls.connect({ socket: d, servername: name, ca: fs.readFileSync(caFile) }, () =>
    s.write('GET / HTTP/1.1\\r\\nHost: ' + host + '\\r\\nConnection: close\\r\\n\\r\\n'));
  let out = '';
  s.on('data', (c) => (out += c));
  s.on('end', () => {
    if (!out) return print({ ok: false, error: 'closed without an answer' });
    const [head, body = ''] = out.split('\\r\\n\\r\\n');
    print({ ok: true, status: Number(head.split(' ')[1]), body: body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1) });
  });
  s.on('error', (e) => print({ ok: false, error: e.code || e.message }));
});
setTimeout(() => print({ ok: false, error: 'timeout' }), 15000);`;

type Answer = { status: number; body: string; reused: boolean };
const served = (body: string) => JSON.parse(body) as { server: string; host: string; headers: Record<string, string> };

/** Polls `cond` until it holds (generous timeout); fails saying what it last saw. */
async function waitFor(what: string, cond: () => boolean, seen: () => unknown, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms; saw ${JSON.stringify(seen())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the egress proxy moves judged connections on the native relay', opts, async () => {
  const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test'] });
  const before = relayStats();
  const r = await execFileP('ip', [
    ...['netns', 'exec', n.netnsName, 'curl', '-sS', '--max-time', '10', '--cacert', suite.inet.caFile],
    ...['--resolve', `a.egress.test:443:${INET.a}`, '-o', '/dev/null', '-w', '%{http_code} %{size_download}'],
    'https://a.egress.test/bytes/1048576',
  ]);
  assert.equal(r.stdout, '200 1048576');
  const after = relayStats();
  assert.ok(after.added > before.added, `no pair handed to the relay: ${JSON.stringify({ before, after })}`);
  assert.ok(after.bytes - before.bytes >= 1 << 20, `the download did not move on the relay: ${JSON.stringify(after)}`);
});

test(
  'hostile: a second request on a kept-alive HTTP connection naming another Host is judged again',
  opts,
  async () => {
    const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test', '*.wild.egress.test'] });
    const neighbour = await capsule();
    // a (allowed), then b (not allowed), on one connection dialled to a's address.
    const [first, second] = await inNetns<Answer[]>(n.netnsName, KEEPALIVE, INET.a, 'a.egress.test', 'b.egress.test');
    assert.equal(first?.status, 200, first?.body);
    assert.equal(served(first!.body).server, INET.a);
    assert.equal(served(first!.body).headers['x-forwarded-host'], undefined, 'the relay added to the head');
    assert.equal(second?.reused, true, 'the second request went on the kept-alive connection');
    assert.equal(second?.status, 403, `b was not refused: ${JSON.stringify(second)}`);
    assert.match(second!.body, /wrenn egress: b\.egress\.test is denied by denyOut/);
    // a, then x.wild (allowed, another address): re-judged and carried to x.wild's own address,
    // then a again: back to a's. The capsule's connection stays one.
    const hop = await inNetns<Answer[]>(
      n.netnsName,
      KEEPALIVE,
      INET.a,
      'a.egress.test',
      'x.wild.egress.test',
      'a.egress.test',
    );
    assert.deepEqual(
      hop.map((h) => [h.status, h.status === 200 ? served(h.body).server : h.body, h.reused]),
      [
        [200, INET.a, false],
        [200, INET.b, true],
        [200, INET.a, true],
      ],
    );
    // Pipelined in one segment: the relay answers the first and hands the second back to be refused.
    const raw = await inNetns<string>(n.netnsName, PIPELINED, INET.a, 'a.egress.test', 'b.egress.test');
    const answers = raw.match(/^HTTP\/1\.1 \d+/gm) ?? [];
    assert.deepEqual(answers, ['HTTP/1.1 200', 'HTTP/1.1 403'], raw);
    assert.equal(raw.includes('"host":"b.egress.test"'), false, 'a server saw the Host b request');
    // The neighbour without a policy reaches b directly.
    const nb = await inNetns<Answer[]>(neighbour.netnsName, KEEPALIVE, INET.b, 'b.egress.test');
    assert.equal(served(nb[0]!.body).server, INET.b);
  },
);

test('hostile: a Host inside TLS other than the SNI still only reaches the SNI name’s address', opts, async () => {
  const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test'] });
  // SNI a (allowed), dialled at b's address, Host b inside the encrypted stream: the proxy cannot
  // read it, so the bytes go to a's address (what the SNI resolves to), never to b's.
  const r = await inNetns<{ ok: boolean; status?: number; body?: string; error?: string }>(
    n.netnsName,
    SPLIT_HELLO.replace('let hello = true', 'let hello = false'),
    INET.b,
    'a.egress.test',
    'b.egress.test',
    suite.inet.caFile,
  );
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(served(r.body!).server, INET.a, `reached another address: ${r.body}`);
  // SNI b (not allowed) is refused whatever the Host inside says.
  const denied = await inNetns<{ ok: boolean; error?: string }>(
    n.netnsName,
    SPLIT_HELLO.replace('let hello = true', 'let hello = false'),
    INET.a,
    'b.egress.test',
    'a.egress.test',
    suite.inet.caFile,
  );
  assert.equal(denied.ok, false, `SNI b was carried: ${JSON.stringify(denied)}`);
});

test('hostile: a ClientHello in one-byte segments is read whole, judged, and sent upstream intact', opts, async () => {
  const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test'] });
  const neighbour = await capsule();
  const ok = await inNetns<{ ok: boolean; status?: number; body?: string }>(
    n.netnsName,
    SPLIT_HELLO,
    INET.a,
    'a.egress.test',
    'a.egress.test',
    suite.inet.caFile,
  );
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.equal(ok.status, 200);
  assert.equal(served(ok.body!).server, INET.a);
  const denied = await inNetns<{ ok: boolean; error?: string }>(
    n.netnsName,
    SPLIT_HELLO,
    INET.b,
    'b.egress.test',
    'b.egress.test',
    suite.inet.caFile,
  );
  assert.equal(denied.ok, false, `a split ClientHello for b was carried: ${JSON.stringify(denied)}`);
  const nb = await inNetns<{ ok: boolean; body?: string }>(
    neighbour.netnsName,
    SPLIT_HELLO,
    INET.b,
    'b.egress.test',
    'b.egress.test',
    suite.inet.caFile,
  );
  assert.equal(served(nb.body!).server, INET.b, 'the neighbour reaches b');
});

test('a capsule’s relayed egress connections end when its network is destroyed', opts, async () => {
  const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test'] });
  const start = relayStats().active;
  // A kept-alive connection that stays open after its answer.
  await nodeInNetns(
    n.netnsName,
    `const http = require('http');
    const agent = new http.Agent({ keepAlive: true });
    http.get({ host: '${INET.a}', path: '/', agent, headers: { host: 'a.egress.test' } }, (res) => {
      res.resume();
      res.on('end', () => console.log('ready'));
    });
    setInterval(() => {}, 1000);`,
  );
  await waitFor(
    'the kept-alive connection is on the relay',
    () => relayStats().active > start,
    () => relayStats(),
  );
  await suite.m.destroy(n.id);
  await waitFor(
    'the relay dropped the destroyed capsule’s connection',
    () => relayStats().active === start,
    () => ({ start, now: relayStats() }),
  );
});
