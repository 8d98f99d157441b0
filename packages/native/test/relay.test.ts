// The native relay with real loopback sockets: a client connects to a front server, the front's
// accepted socket and a connection to a back server are handed to the relay, and the client and
// the back server's socket talk through it.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { type TestContext, test } from 'node:test';
import {
  type RelayedPair,
  type RelayResult,
  relayAvailable,
  relayCloseGroup,
  relaySockets,
  relayStats,
  relayYieldGroup,
} from '../src/index.js';

const fdCount = () => readdirSync('/proc/self/fd').length;

interface Ends {
  /** The outside client, talking to `server` through the relay. */
  client: net.Socket;
  server: net.Socket;
  /** The two sockets that get handed over. */
  front: net.Socket;
  back: net.Socket;
}

async function listen(t: TestContext): Promise<{ srv: net.Server; port: number; next(): Promise<net.Socket> }> {
  const queue: net.Socket[] = [];
  const waiters: Array<(s: net.Socket) => void> = [];
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    const w = waiters.shift();
    if (w) w(s);
    else queue.push(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  return {
    srv,
    port: (srv.address() as net.AddressInfo).port,
    next: () => new Promise((r) => (queue.length ? r(queue.shift() as net.Socket) : waiters.push(r))),
  };
}

async function ends(t: TestContext): Promise<Ends> {
  const f = await listen(t);
  const b = await listen(t);
  const client = net.connect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true });
  const front = await f.next();
  const back = net.connect({ port: b.port, host: '127.0.0.1', allowHalfOpen: true });
  const server = await b.next();
  if (back.connecting) await once(back, 'connect');
  if (client.connecting) await once(client, 'connect');
  t.after(() => {
    for (const s of [client, server, front, back]) s.destroy();
  });
  return { client, server, front, back };
}

function done(pair: RelayedPair): Promise<RelayResult> {
  return pair.result ? Promise.resolve(pair.result) : new Promise((r) => pair.once('close', r));
}

/** Reads a socket to its end: the bytes' count and sha256. */
function drain(s: net.Socket): Promise<{ n: number; sha: string; error?: string }> {
  return new Promise((resolve) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    s.once('end', () => resolve({ n, sha: h.digest('hex') }));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ n, sha: '', error: e.code ?? e.message }));
  });
}

/** Writes `total` random bytes in pieces (respecting back-pressure), then ends; returns their sha256. */
async function pour(s: net.Socket, total: number): Promise<string> {
  const h = createHash('sha256');
  let left = total;
  while (left > 0) {
    const piece = randomBytes(Math.min(left, 1 + Math.floor(Math.random() * 256 * 1024)));
    h.update(piece);
    left -= piece.length;
    if (!s.write(piece)) await once(s, 'drain');
  }
  s.end();
  return h.digest('hex');
}

test('the relay is built into the addon', () => {
  assert.ok(relayAvailable(), 'relayAvailable(): rebuild the addon with node packages/native/build.mjs');
});

test('32 MiB each way at once, whole and in order, with bytes Node had already read before the handover', async (t) => {
  const e = await ends(t);
  const before = relayStats().added;
  // The client starts sending before the handover; the front socket's first chunk is consumed by
  // "JS" (forwarded by hand, like the proxy does with a request head), the rest waits in Node's buffer.
  const clientGot = drain(e.client);
  const serverGot = drain(e.server);
  const upSha = pour(e.client, 32 << 20);
  const [first] = (await once(e.front, 'data')) as [Buffer];
  e.front.pause();
  e.back.write(first);
  await new Promise((r) => setTimeout(r, 20)); // let more arrive into Node's read buffer
  const pair = relaySockets(e.front, e.back, { group: 'big' });
  const downSha = pour(e.server, 32 << 20);
  const [up, down] = await Promise.all([serverGot, clientGot]);
  assert.equal(up.n, 32 << 20);
  assert.equal(up.sha, await upSha);
  assert.equal(down.n, 32 << 20);
  assert.equal(down.sha, await downSha);
  const r = await done(pair);
  assert.equal(r.reason, 'done');
  assert.equal(r.aToB + first.length, 32 << 20);
  assert.equal(r.bToA, 32 << 20);
  assert.equal(relayStats().added, before + 1);
});

test('half-close: the client ends its side, the server still answers, then ends too', async (t) => {
  const e = await ends(t);
  const pair = relaySockets(e.front, e.back);
  const serverGot = drain(e.server);
  e.client.end('request');
  const req = await serverGot;
  assert.equal(req.n, 7, 'the request arrived and its EOF was passed on');
  // The server's side is still open: a long answer after the client's EOF.
  const clientGot = drain(e.client);
  const sha = await pour(e.server, 4 << 20);
  const res = await clientGot;
  assert.equal(res.n, 4 << 20);
  assert.equal(res.sha, sha);
  const r = await done(pair);
  assert.equal(r.reason, 'done');
  assert.deepEqual([r.aToB, r.bToA], [7, 4 << 20]);
});

test('a peer reset fails the other side too (reason error)', async (t) => {
  const e = await ends(t);
  const pair = relaySockets(e.front, e.back);
  e.client.write('hello');
  await once(e.server, 'data');
  const clientClosed = new Promise<string>((r) => {
    e.client.once('error', (err: NodeJS.ErrnoException) => r(err.code ?? 'error'));
    e.client.once('end', () => r('end'));
  });
  e.server.resetAndDestroy();
  const r = await done(pair);
  assert.equal(r.reason, 'error');
  assert.equal(await clientClosed, 'ECONNRESET', 'the client sees the failure, not a clean end');
});

test('an idle pair is closed after idleMs; a busy one is not', async (t) => {
  const idle = await ends(t);
  const busy = await ends(t);
  const idleEnded = once(idle.client.resume(), 'end');
  const p1 = relaySockets(idle.front, idle.back, { idleMs: 300 });
  const p2 = relaySockets(busy.front, busy.back, { idleMs: 300 });
  busy.server.on('data', (c: Buffer) => busy.server.write(c));
  const timer = setInterval(() => busy.client.write('tick'), 50);
  t.after(() => clearInterval(timer));
  const r = await done(p1);
  assert.equal(r.reason, 'idle');
  await idleEnded;
  assert.equal(p2.result, undefined, 'the busy pair is still carried');
  clearInterval(timer);
  p2.close();
  assert.equal((await done(p2)).reason, 'closed');
});

test('closing a group closes its pairs only', async (t) => {
  const all = await Promise.all([ends(t), ends(t), ends(t), ends(t)]);
  const pairs = all.map((e, i) => relaySockets(e.front, e.back, { group: i < 3 ? 'cl-gone' : 'cl-stays' }));
  await new Promise((r) => setTimeout(r, 50));
  relayCloseGroup('cl-gone');
  const reasons = await Promise.all(pairs.slice(0, 3).map(done));
  assert.deepEqual(
    reasons.map((r) => r.reason),
    ['group', 'group', 'group'],
  );
  // The other group's pair still carries bytes.
  const last = all[3] as Ends;
  last.client.write('still here');
  const [got] = (await once(last.server, 'data')) as [Buffer];
  assert.equal(got.toString(), 'still here');
  pairs[3]?.close();
  await done(pairs[3] as RelayedPair);
});

test('200 pairs at once each echo 256 KiB; no fd is left behind', async (t) => {
  // Warm up (the relay's own epoll and eventfd are opened once, on first use).
  relayAvailable();
  const fdsBefore = fdCount();
  {
    const b = await listen(t);
    const f = await listen(t);
    const N = 200;
    const runs = Array.from({ length: N }, async () => {
      const client = net.connect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true });
      const front = await f.next();
      const back = net.connect({ port: b.port, host: '127.0.0.1', allowHalfOpen: true });
      const server = await b.next();
      if (back.connecting) await once(back, 'connect');
      // The server echoes and ends when the client did.
      server.pipe(server);
      const pair = relaySockets(front, back, { group: 'many', idleMs: 60_000 });
      const got = drain(client);
      const sha = await pour(client, 256 * 1024);
      const echoed = await got;
      assert.equal(echoed.sha, sha);
      const r = await done(pair);
      assert.equal(r.reason, 'done');
      client.destroy();
      server.destroy();
    });
    await Promise.all(runs);
    await new Promise<void>((r) => b.srv.close(() => r()));
    await new Promise<void>((r) => f.srv.close(() => r()));
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(relayStats().active, 0);
  assert.equal(fdCount(), fdsBefore, 'every socket, dup and pipe is closed');
});

test('close() while the handover waits for a slow reader ends the pair; the sockets are destroyed', async (t) => {
  const e = await ends(t);
  // 64 MiB queued toward a client that does not read: the handover waits for it to flush.
  e.client.pause();
  e.front.write(Buffer.alloc(64 << 20));
  const pair = relaySockets(e.front, e.back);
  assert.equal(pair.id, undefined, 'still handing over');
  pair.close();
  const r = await done(pair);
  assert.equal(r.reason, 'closed');
  assert.ok(e.front.destroyed && e.back.destroyed);
});

test('a handover stuck behind a peer that never reads ends after idleMs (reason idle)', async (t) => {
  const e = await ends(t);
  e.client.pause();
  e.front.write(Buffer.alloc(64 << 20));
  const pair = relaySockets(e.front, e.back, { idleMs: 300 });
  assert.equal(pair.id, undefined, 'still handing over');
  const r = await done(pair);
  assert.equal(r.reason, 'idle');
  assert.ok(e.front.destroyed && e.back.destroyed);
});

/** Collects what a socket receives until `want` is in it. */
function receive(s: net.Socket): { until(want: string): Promise<string>; text(): string } {
  let got = '';
  const waiters: Array<() => void> = [];
  s.on('data', (c: Buffer) => {
    got += c.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  return {
    async until(want) {
      while (!got.includes(want)) await new Promise<void>((r) => waiters.push(r));
      return got;
    },
    text: () => got,
  };
}

const HTTP = {
  kind: 'path' as const,
  prefix: '/proxy/cl-x/80',
  host: 'h',
  remote: '10.1.2.3',
  targetHost: '10.0.0.2',
  targetPort: 80,
  inflight: [],
  req: 'head' as const,
};

test('HTTP mode: a head for another route comes back to JS with the bytes after it; the connection still works', async (t) => {
  const e = await ends(t);
  const atServer = receive(e.server);
  const atClient = receive(e.client);
  const pair = relaySockets(e.front, e.back, { group: 'h1', http: HTTP });
  e.client.write('GET /proxy/cl-x/80/a?b=1 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n');
  assert.equal(
    await atServer.until('\r\n\r\n'),
    'GET /a?b=1 HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 1.1.1.1, 10.1.2.3\r\nx-forwarded-host: h\r\n\r\n',
  );
  e.server.write('HTTP/1.1 302 Found\r\nLocation: http://10.0.0.2/x\r\nContent-Length: 0\r\n\r\n');
  assert.match(await atClient.until('\r\n\r\n'), /\r\nlocation: \/proxy\/cl-x\/80\/x\r\n/);
  // Another capsule's prefix, then more bytes in the same write.
  e.client.write('GET /proxy/cl-y/80/ HTTP/1.1\r\nHost: h\r\n\r\nGET /next');
  const r = await done(pair);
  assert.equal(r.reason, 'handback');
  assert.ok(r.client, 'the client connection comes back');
  assert.equal(r.rest?.toString(), 'GET /proxy/cl-y/80/ HTTP/1.1\r\nHost: h\r\n\r\nGET /next');
  const back = r.client;
  t.after(() => back.destroy());
  back.write('answer from JS');
  await atClient.until('answer from JS');
  const atBack = receive(back);
  e.client.write('more');
  await atBack.until('more');
});

test('HTTP mode: yielding waits for the request body under way and its response, then hands back', async (t) => {
  const e = await ends(t);
  const atServer = receive(e.server);
  const atClient = receive(e.client);
  const pair = relaySockets(e.front, e.back, { group: 'h2', http: HTTP });
  let result: RelayResult | undefined;
  pair.once('close', (r: RelayResult) => (result = r));
  e.client.write('POST /proxy/cl-x/80/up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n');
  await atServer.until('12345\r\n');
  relayYieldGroup('h2');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(result, undefined, 'not handed back in the middle of a request');
  e.client.write('3\r\nabc\r\n0\r\n\r\n');
  await atServer.until('0\r\n\r\n');
  assert.ok(atServer.text().startsWith('POST /up HTTP/1.1\r\n'));
  assert.equal(result, undefined, 'not handed back before the response');
  e.server.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
  await atClient.until('0\r\n\r\n');
  const r = await done(pair);
  assert.equal(r.reason, 'handback');
  assert.equal(r.rest?.length, 0);
  r.client?.destroy();
});

test('HTTP mode: framing errors reset both sides; a response that says close ends the client after it', async (t) => {
  const e = await ends(t);
  const pair = relaySockets(e.front, e.back, { group: 'h3', http: { ...HTTP, kind: 'host', prefix: undefined } });
  const atServer = receive(e.server);
  const atClient = receive(e.client);
  e.client.write('HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /g HTTP/1.1\r\nHost: h\r\n\r\n');
  await atServer.until('GET /g');
  // HEAD: no body despite its length; then a close-delimited answer ends the connection.
  e.server.write(
    'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlastEXTRA',
  );
  const clientEnd = once(e.client, 'end');
  await atClient.until('last');
  await clientEnd;
  assert.ok(!atClient.text().includes('EXTRA'), 'nothing after the closing response');
  assert.equal((await done(pair)).reason, 'done');

  const f = await ends(t);
  const bad = relaySockets(f.front, f.back, { group: 'h4', http: HTTP });
  f.client.on('error', () => undefined);
  f.server.on('error', () => undefined);
  f.client.write('POST /proxy/cl-x/80/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
  const r = await done(bad);
  assert.equal(r.reason, 'error');
});

test('HTTP mode: closing a group sends its answer to a client whose request waits, and only to it', async (t) => {
  const ANSWER = 'HTTP/1.1 502 Bad Gateway\r\ncontent-length: 4\r\nconnection: close\r\n\r\ngone';
  // Waiting: its request reached the server, no byte of the answer came back.
  const w = await ends(t);
  const waiting = relaySockets(w.front, w.back, {
    group: 'h-gone',
    http: { ...HTTP, kind: 'host', prefix: undefined },
  });
  const atServer = receive(w.server);
  const atWaiting = receive(w.client);
  w.client.write('GET /wait HTTP/1.1\r\nHost: h\r\n\r\n');
  await atServer.until('GET /wait');
  // Answering: part of its answer already went out; it is cut, never given a second answer.
  const a = await ends(t);
  const answering = relaySockets(a.front, a.back, {
    group: 'h-gone',
    http: { ...HTTP, kind: 'host', prefix: undefined },
  });
  const atServer2 = receive(a.server);
  const atAnswering = receive(a.client);
  a.client.write('GET /part HTTP/1.1\r\nHost: h\r\n\r\n');
  await atServer2.until('GET /part');
  a.server.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf');
  await atAnswering.until('half');
  // Idle: nothing asked, so nothing is sent.
  const i = await ends(t);
  const idle = relaySockets(i.front, i.back, { group: 'h-gone', http: { ...HTTP, kind: 'host', prefix: undefined } });
  const atIdle = receive(i.client);
  const waitingEnded = once(w.client, 'end');
  relayCloseGroup('h-gone', ANSWER);
  const reasons = await Promise.all([waiting, answering, idle].map(done));
  assert.deepEqual(
    reasons.map((r) => r.reason),
    ['group', 'group', 'group'],
  );
  await waitingEnded;
  assert.equal(atWaiting.text(), ANSWER, 'the waiting client gets the answer, then the end');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!atAnswering.text().includes('502'), 'an answer under way got a second one');
  assert.equal(atIdle.text(), '', 'an idle client got an answer to nothing');
});
