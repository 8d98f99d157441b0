// The sandbox proxy against a real control plane (SQLite) whose capsules live on a "remote" host:
// the host's address is a loopback HTTP server standing where the agent's /proxy endpoint would be,
// so every request the proxy sends shows up there with its path, headers and connection.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { loadAgentTls } from '@wrenn/host-agent';
import { guestErrorBody, proxyFailure } from '@wrenn/host-agent/client';
import { relayAvailable, relayStats } from '@wrenn/native';
import { WebSocket, WebSocketServer } from 'ws';
import { type CapsuleState, createCapsule, setCapsuleState } from '../src/db/repositories/capsules.js';
import { createHost } from '../src/db/repositories/hosts.js';
import { createTeam } from '../src/db/repositories/teams.js';
import { HEADERS_TIMEOUT_MS } from '../src/proxy/pipe.js';
import { type RunningControlPlane, startControlPlane } from '../src/server.js';

const DOMAIN = 'wrenn.test';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Field names and values as they came on the wire (their case kept). */
  rawHeaders: string[];
  body: string;
  /** The proxy's side of the upstream connection: equal for requests carried on one connection. */
  conn: number;
}

interface Upstream {
  port: number;
  seen: Seen[];
  server: http.Server;
}

async function listen(server: http.Server | net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/** The host's /proxy endpoint: echoes what it got; /redirect and /chunked answer specially. */
function upstreamHandler(seen: Seen[]): http.RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString(),
        conn: req.socket.remotePort ?? 0,
      };
      seen.push(s);
      if (req.url?.endsWith('/redirect')) {
        res.writeHead(302, { location: '/landed/' });
        return res.end();
      }
      if (req.url?.endsWith('/redirect-absolute')) {
        // An absolute URL naming the server itself keeps the prefix too; another host's does not.
        const self = `http://localhost:${(req.socket.address() as net.AddressInfo).port}/abs/?x=1#top`;
        res.writeHead(301, { location: req.url.includes('elsewhere') ? 'https://example.org/x' : self });
        return res.end();
      }
      // Never answered: a request the capsule keeps waiting (the test ends it).
      if (req.url?.endsWith('/hang')) return;
      if (req.url?.endsWith('/close')) {
        res.writeHead(200, { connection: 'close', 'content-length': '3' });
        return res.end('bye');
      }
      if (req.url?.endsWith('/big')) {
        // 8 MiB, numbered so a lost, repeated or reordered piece shows.
        const block = Buffer.alloc(64 * 1024);
        res.writeHead(200, { 'content-length': String(128 * block.length) });
        let i = 0;
        const more = (): void => {
          while (i < 128) {
            block.fill(i % 251);
            if (!res.write(Buffer.from(block))) {
              i++;
              return void res.once('drain', more);
            }
            i++;
          }
          res.end();
        };
        return more();
      }
      if (req.url?.endsWith('/chunked')) {
        res.write('part1-');
        setTimeout(() => res.end('part2'), 5);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(s));
    });
  };
}

async function startUpstream(t: TestContext, port = 0, tls?: { cert: Buffer; key: Buffer }): Promise<Upstream> {
  const seen: Seen[] = [];
  // With `tls`, it stands where a TLS-serving agent's /proxy endpoint would be.
  const server = tls
    ? https.createServer({ keepAliveTimeout: 30_000, ...tls }, upstreamHandler(seen))
    : http.createServer({ keepAliveTimeout: 30_000 }, upstreamHandler(seen));
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws) =>
      ws.on('message', (m, bin) => ws.send(bin ? m : `echo:${m.toString()}`)),
    ),
  );
  const p = await listen(server, port);
  t.after(() => {
    wss.close();
    server.closeAllConnections();
    server.close();
  });
  return { port: p, seen, server };
}

interface Live {
  cp: RunningControlPlane;
  port: number;
  dataDir: string;
  /** Capsules by name, on a host whose address is the given upstream. */
  ids: Record<string, string>;
  setState(id: string, state: CapsuleState): Promise<void>;
}

async function startLive(
  t: TestContext,
  upstreamPort: number,
  states: Record<string, CapsuleState> = { a: 'running', b: 'running' },
  opts: { tls?: boolean; agentTlsCert?: string } = {},
): Promise<Live> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-proxy-test-'));
  let cp: RunningControlPlane | undefined;
  t.after(async () => {
    await cp?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  cp = await startControlPlane({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    domain: DOMAIN,
    publicUrl: 'http://127.0.0.1',
    logLevel: 'silent',
    stateLoops: false,
    ...(opts.tls ? { tls: 'self-signed' as const } : {}),
  });
  const db = cp.ctx.database.db;
  const team = await createTeam(db, { name: 'proxy-test' });
  const host = await createHost(db, {
    // A host whose agent serves TLS: every hop to it is pinned to this certificate.
    address: `${opts.agentTlsCert ? 'https' : 'http'}://127.0.0.1:${upstreamPort}`,
    ...(opts.agentTlsCert ? { agentTlsCert: opts.agentTlsCert } : {}),
    runtimes: ['namespace'],
    cpuCount: 2,
    memoryMb: 1024,
  });
  const ids: Record<string, string> = {};
  for (const [name, state] of Object.entries(states)) {
    const c = await createCapsule(db, {
      id: `cl-proxytest${name}`,
      teamId: team.id,
      hostId: host.id,
      template: 'base',
      runtime: 'namespace',
      vcpus: 1,
      memoryMb: 256,
      timeoutSec: 600,
      state,
    });
    ids[name] = c.id;
  }
  // The proxy puts its piped path in front of the server on its first proxied request (until
  // server.ts calls proxy.attach); every connection after this one starts on the piped path.
  if (!opts.tls) {
    const warm = await fetch(`http://127.0.0.1:${cp.port}/proxy/cl-warmup/1/`);
    assert.equal(warm.status, 502);
  }
  return {
    cp,
    port: cp.port,
    dataDir,
    ids,
    async setState(id, state) {
      await setCapsuleState(db, id, state);
      cp.ctx.evictProxy(id);
    },
  };
}

/** A raw client connection: write requests, read whole responses (Content-Length or chunked). */
class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  ended = false;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  static async connect(t: TestContext, port: number): Promise<RawClient> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    t.after(() => s.destroy());
    return new RawClient(s);
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  private async more(): Promise<void> {
    if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf.toString())}`);
    await new Promise<void>((r) => this.waiters.push(r));
  }
  send(text: string): void {
    this.socket.write(text);
  }
  async response(): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    let end: number;
    while ((end = this.buf.indexOf('\r\n\r\n')) < 0) await this.more();
    const [statusLine = '', ...lines] = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    this.buf = this.buf.subarray(end + 4);
    let body = '';
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      while (this.buf.length < n) await this.more();
      body = this.buf.subarray(0, n).toString();
      this.buf = this.buf.subarray(n);
    } else if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        let le: number;
        while ((le = this.buf.indexOf('\r\n')) < 0) await this.more();
        const size = parseInt(this.buf.subarray(0, le).toString(), 16);
        while (this.buf.length < le + 2 + size + 2) await this.more();
        body += this.buf.subarray(le + 2, le + 2 + size).toString();
        this.buf = this.buf.subarray(le + 2 + size + 2);
        if (size === 0) break;
      }
    }
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  }
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => this.waiters.push(r));
  }
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;

test('a piped keep-alive connection carries many requests over one upstream connection, by path, host and headers', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const a = live.ids.a ?? '';
  for (const kind of ['path', 'host', 'header'] as const) {
    up.seen.length = 0;
    const c = await RawClient.connect(t, live.port);
    for (let i = 0; i < 50; i++) {
      if (kind === 'path') c.send(get(`/proxy/${a}/8080/item/${i}/?q=${i}`));
      else if (kind === 'host')
        c.send(`GET /item/${i}/?q=${i} HTTP/1.1\r\nHost: 8080-${a}.${DOMAIN}:${live.port}\r\n\r\n`);
      else c.send(get(`/item/${i}/?q=${i}`, `E2b-Sandbox-Id: ${a}\r\nE2b-Sandbox-Port: 8080\r\n`));
      const r = await c.response();
      assert.equal(r.status, 200, kind);
      const s = JSON.parse(r.body) as Seen;
      // The capsule's port sees its own path, trailing slash and query kept.
      assert.equal(s.url, `/proxy/${a}/8080/item/${i}/?q=${i}`, kind);
      assert.equal(s.headers['x-forwarded-for'], '127.0.0.1');
      // Only the piped path passes the server's own keep-alive field through (Node's HTTP client drops it).
      assert.equal(r.headers['keep-alive'], 'timeout=30');
    }
    assert.equal(up.seen.length, 50);
    assert.equal(
      new Set(up.seen.map((s) => s.conn)).size,
      1,
      `${kind}: one upstream connection for one client connection`,
    );
    c.socket.destroy();
  }
});

test("maskRequestHost: the capsule's server sees one `Host` field (E2B's case) with the masked host, the client's as x-forwarded-host", async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const a = live.ids.a ?? '';
  // Reached directly (as a capsule on this machine), masked: the piped path rewrites the head.
  live.cp.ctx.primeProxy(a, {
    state: 'running',
    hostId: 'host-local',
    agentUrl: 'http://127.0.0.1:1',
    capsuleAddress: '127.0.0.1',
    trafficToken: null,
    maskRequestHost: 'masked.example:${PORT}',
  });
  const c = await RawClient.connect(t, live.port);
  // Lower-case field names, as undici (Node's fetch) sends them.
  const clientHost = `${up.port}-${a}.${DOMAIN}`;
  for (let i = 0; i < 2; i++) {
    c.send(`GET /m/${i} HTTP/1.1\r\nhost: ${clientHost}\r\naccept: */*\r\n\r\n`);
    const r = await c.response();
    assert.equal(r.status, 200);
    const s = JSON.parse(r.body) as Seen;
    const hostFields = s.rawHeaders.filter((_, j) => j % 2 === 0 && s.rawHeaders[j]?.toLowerCase() === 'host');
    assert.deepEqual(
      hostFields,
      ['Host'],
      `one Host field, written Host; the head had ${JSON.stringify(s.rawHeaders)}`,
    );
    assert.equal(s.headers.host, `masked.example:${up.port}`);
    assert.equal(s.headers['x-forwarded-host'], clientHost);
  }
});

test("HTTP/2: a request still waiting on a capsule that is destroyed gets E2B's 502 'The sandbox was not found', not a reset stream", async (t) => {
  // The e2b SDK calls a sandbox killed (runCode, commands) only when envd's /health, asked right
  // after the call broke off, answers 502; a reset stream there made it rethrow a bare "terminated".
  const up = await startUpstream(t);
  const live = await startLive(t, up.port, { a: 'running' }, { tls: true });
  const a = live.ids.a ?? '';
  const session = http2.connect(`https://127.0.0.1:${live.port}`, {
    ca: readFileSync(join(live.dataDir, 'tls', 'ca.crt')),
    servername: `api.${DOMAIN}`,
  });
  t.after(() => session.destroy());
  session.on('error', () => undefined);
  const req = session.request({
    ':path': '/hang',
    ':authority': `api.${DOMAIN}`,
    'e2b-sandbox-id': a,
    'e2b-sandbox-port': '49983',
  });
  const answer = new Promise<{ status: number; body: string; error?: string }>((resolve) => {
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, body }));
    req.on('error', (err) => resolve({ status, body, error: String(err) }));
  });
  req.end();
  const deadline = Date.now() + 30_000;
  while (!up.seen.some((x) => x.url.endsWith('/hang'))) {
    assert.ok(
      Date.now() < deadline,
      `the request never reached the capsule; it saw ${JSON.stringify(up.seen.map((x) => x.url))}`,
    );
    await new Promise((r) => setTimeout(r, 20));
  }
  await live.setState(a, 'stopped');
  const got = await answer;
  assert.equal(got.status, 502, `answer: ${JSON.stringify(got)}`);
  const json = JSON.parse(got.body) as { message: string; sandboxId: string; code: number };
  assert.equal(json.message, 'The sandbox was not found');
  assert.equal(json.sandboxId, a);
  assert.equal(json.code, 502);
});

test('a later request on the same connection for another capsule reaches that capsule, never the first', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const { a = '', b = '' } = live.ids;
  const c = await RawClient.connect(t, live.port);
  const order = [a, b, a, a, b];
  for (const [i, id] of order.entries()) {
    c.send(get(`/n/${i}`, `E2b-Sandbox-Id: ${id}\r\nE2b-Sandbox-Port: 49983\r\n`));
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as Seen).url, `/proxy/${id}/49983/n/${i}`);
  }
  // And another port of the same capsule is another upstream route too.
  c.send(get(`/proxy/${a}/3000/x`));
  assert.equal((JSON.parse((await c.response()).body) as Seen).url, `/proxy/${a}/3000/x`);
  assert.deepEqual(
    up.seen.map((s) => s.url.split('/')[2]),
    [...order, a],
  );
});

test('pipelined requests, bodies (length and chunked) and an API call on one connection', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const a = live.ids.a ?? '';
  const c = await RawClient.connect(t, live.port);
  c.send(
    `POST /proxy/${a}/8080/len HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world` +
      `POST /proxy/${a}/8080/chunks HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\nc\r\n3;ext=1\r\ndef\r\n0\r\nX-Trailer: 1\r\n\r\n` +
      get(`/proxy/${a}/8080/chunked`) +
      get(`/proxy/${a}/8080/redirect`) +
      `HEAD /proxy/${a}/8080/head HTTP/1.1\r\nHost: localhost\r\n\r\n`,
  );
  const r1 = await c.response();
  assert.equal((JSON.parse(r1.body) as Seen).body, 'hello world');
  const r2 = await c.response();
  assert.equal((JSON.parse(r2.body) as Seen).body, 'ab\r\ncdef');
  const r3 = await c.response();
  assert.equal(r3.body, 'part1-part2');
  const r4 = await c.response();
  assert.equal(r4.status, 302);
  assert.equal(r4.headers.location, `/proxy/${a}/8080/landed/`, 'the redirect keeps the prefix');
  const r5 = await c.response(); // HEAD: a head with Content-Length but no body follows
  assert.equal(r5.status, 200);
  // The proxy's own fields: X-Forwarded-For extended, Proxy-Authorization dropped, the rest as sent.
  c.send(
    get(
      `/proxy/${a}/8080/hdr`,
      'X-Forwarded-For: 10.0.0.1\r\nProxy-Authorization: secret\r\nX-Custom: kept\r\nX-Forwarded-Host: elsewhere\r\n',
    ),
  );
  const hdr = JSON.parse((await c.response()).body) as Seen;
  assert.equal(hdr.headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
  assert.equal(hdr.headers['proxy-authorization'], undefined);
  assert.equal(hdr.headers['x-custom'], 'kept');
  assert.equal(hdr.headers['x-forwarded-host'], 'localhost');
  assert.equal(hdr.headers.host, 'localhost');
  // The API on the same connection: the API server takes it over.
  c.send(get('/health'));
  const h = await c.response();
  assert.match(h.body, /"status"/);
  c.send(get('/v1/capsules'));
  assert.equal((await c.response()).status, 401);
});

test("unknown or paused capsule: E2B's 502 'The sandbox was not found' with the reason; a capsule destroyed mid-connection tears it down", async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port, { a: 'running', p: 'paused' });
  const c1 = await RawClient.connect(t, live.port);
  c1.send(get('/proxy/cl-nosuchcapsule/8080/'));
  const r1 = await c1.response();
  // E2B's shape (the e2b SDK reads a 502 as "not running"), with Wrenn's reason beside it.
  assert.equal(r1.status, 502);
  const b1 = JSON.parse(r1.body) as Record<string, unknown>;
  assert.deepEqual(
    { code: b1.code, message: b1.message, sandboxId: b1.sandboxId },
    { code: 502, message: 'The sandbox was not found', sandboxId: 'cl-nosuchcapsule' },
  );
  assert.match(String(b1.detail), /capsule cl-nosuchcapsule not found/);
  const c2 = await RawClient.connect(t, live.port);
  c2.send(`GET / HTTP/1.1\r\nHost: 8080-${live.ids.p}.${DOMAIN}\r\n\r\n`);
  const r2 = await c2.response();
  assert.equal(r2.status, 502);
  assert.match(r2.body, /"message":"The sandbox was not found"/);
  assert.match(r2.body, /is paused; resume it/);

  const c3 = await RawClient.connect(t, live.port);
  c3.send(get(`/proxy/${live.ids.a}/8080/`));
  assert.equal((await c3.response()).status, 200);
  // A paused capsule answers 502 to the next request of a live connection.
  await live.setState(live.ids.a ?? '', 'paused');
  c3.send(get(`/proxy/${live.ids.a}/8080/`));
  assert.equal((await c3.response()).status, 502);

  const c4 = await RawClient.connect(t, live.port);
  await live.setState(live.ids.a ?? '', 'running');
  c4.send(get(`/proxy/${live.ids.a}/8080/`));
  assert.equal((await c4.response()).status, 200);
  await live.setState(live.ids.a ?? '', 'stopped');
  await c4.closed();
});

test('WebSocket through the piped path (host routing), and dial retry while the server starts', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const ws = new WebSocket(`ws://127.0.0.1:${live.port}/socket`, { headers: { host: `8080-${live.ids.a}.${DOMAIN}` } });
  t.after(() => ws.terminate());
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const got = new Promise<string>((r) => ws.once('message', (m) => r(m.toString())));
  ws.send('ping');
  assert.equal(await got, 'echo:ping');
  assert.equal(up.seen.length, 0, 'the upgrade went to the WebSocket server, not the request handler');

  // A port nothing listens on yet: the proxy retries the dial (linear backoff) until it answers.
  const probe = net.createServer();
  const port = await listen(probe);
  await new Promise((r) => probe.close(r));
  const live2 = await startLive(t, port);
  const c = await RawClient.connect(t, live2.port);
  c.send(get(`/proxy/${live2.ids.a}/8080/late`));
  const seen: Seen[] = [];
  const late = http.createServer(upstreamHandler(seen));
  setTimeout(() => void listen(late, port), 120);
  t.after(() => {
    late.closeAllConnections();
    late.close();
  });
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(seen[0]?.url, `/proxy/${live2.ids.a}/8080/late`);
});

test("a server that never comes up: E2B's 502 'port is not open' naming the capsule and port", async (t) => {
  const probe = net.createServer();
  const port = await listen(probe);
  await new Promise((r) => probe.close(r));
  const live = await startLive(t, port);
  const c = await RawClient.connect(t, live.port);
  c.send(get(`/proxy/${live.ids.a}/8080/`));
  const r = await c.response();
  assert.equal(r.status, 502);
  const b = JSON.parse(r.body) as Record<string, unknown>;
  assert.deepEqual(
    { code: b.code, message: b.message, sandboxId: b.sandboxId, port: b.port },
    { code: 502, message: 'The sandbox is running but port is not open', sandboxId: live.ids.a, port: 8080 },
  );
  assert.match(String(b.detail), /nothing answered on port 8080/);
});

/** What every path of the proxy answers to a request head that does not arrive in time. */
const HEAD_TIMEOUT_BODY = guestErrorBody(
  proxyFailure(408, `request head not received within ${HEADERS_TIMEOUT_MS} ms`),
);

test('a request head not finished within 10 s: 408, on a fresh connection and between requests of a piped one', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const fresh = await RawClient.connect(t, live.port);
  fresh.send(`GET /proxy/${live.ids.a}/8080/ HTTP/1.1\r\nHost: loc`);
  const piped = await RawClient.connect(t, live.port);
  piped.send(get(`/proxy/${live.ids.a}/8080/`));
  assert.equal((await piped.response()).status, 200);
  piped.send(`GET /proxy/${live.ids.a}/8080/ HTTP/1.1\r\nHost: loc`);
  const [r1, r2] = await Promise.all([fresh.response(), piped.response()]);
  assert.equal(r1.status, 408);
  assert.equal(r2.status, 408);
  // A head never finished is not yet known to be the proxy's: node's HTTP server answers r1. Once
  // a connection is the proxy's, the piped path and the native relay (below) answer with one body.
  assert.equal(r2.body, HEAD_TIMEOUT_BODY);
  await Promise.all([fresh.closed(), piped.closed()]);
});

test('a WebSocket carried by the piped path is torn down when its capsule is destroyed', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const ws = new WebSocket(`ws://127.0.0.1:${live.port}/proxy/${live.ids.a}/8080/socket`);
  t.after(() => ws.terminate());
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const got = new Promise<string>((r) => ws.once('message', (m) => r(m.toString())));
  ws.send('x');
  assert.equal(await got, 'echo:x');
  const closed = new Promise((r) => ws.once('close', r));
  await live.setState(live.ids.a ?? '', 'stopped');
  await closed;
});

test('big bodies both ways through the piped path arrive whole and in order (a client slow to read)', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const base = { host: '127.0.0.1', port: live.port, agent };
  // Download: the client does not read for a while, so the proxy must hold the upstream back.
  const res = await new Promise<http.IncomingMessage>((r, j) =>
    http.get({ ...base, path: `/proxy/${live.ids.a}/8080/big` }, r).once('error', j),
  );
  res.pause();
  await new Promise((r) => setTimeout(r, 300));
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  assert.equal(body.length, 128 * 64 * 1024);
  for (let i = 0; i < 128; i++) assert.equal(body[i * 64 * 1024 + 100], i % 251, `block ${i}`);
  // Upload on the same connection: 8 MiB that the upstream echoes back as its length.
  const payload = Buffer.alloc(8 * 1024 * 1024, 7);
  payload.write('end-marker', payload.length - 10);
  const echoed = await new Promise<string>((r, j) => {
    const req = http.request({ ...base, method: 'POST', path: `/proxy/${live.ids.a}/8080/upload` }, (resp) => {
      let text = '';
      resp
        .setEncoding('utf8')
        .on('data', (d: string) => (text += d))
        .on('end', () => r(text));
    });
    req.once('error', j);
    req.end(payload);
  });
  const seen = JSON.parse(echoed) as Seen;
  assert.equal(seen.body.length, payload.length);
  assert.ok(seen.body.endsWith('end-marker'));
  assert.equal(new Set(up.seen.map((x) => x.conn)).size, 1, 'both on one upstream connection');
});

test('a keep-alive connection to a directly reached capsule and a WebSocket go through the native relay, every byte delivered', async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const a = live.ids.a ?? '';
  // Reached directly, like a capsule of a host agent on this machine: no per-request path prefix.
  live.cp.ctx.primeProxy(a, {
    state: 'running',
    hostId: 'host-local',
    agentUrl: 'http://127.0.0.1:1',
    capsuleAddress: '127.0.0.1',
    trafficToken: null,
    maskRequestHost: null,
  });
  assert.ok(relayAvailable(), 'the native relay is built (node packages/native/build.mjs)');

  // Path routing: the relay's HTTP mode takes the prefix off every request.
  let before = relayStats();
  const byPath = await RawClient.connect(t, live.port);
  byPath.send(get(`/proxy/${a}/${up.port}/p`));
  assert.equal((JSON.parse((await byPath.response()).body) as Seen).url, '/p');
  byPath.send(get(`/proxy/${a}/${up.port}/q`));
  assert.equal((JSON.parse((await byPath.response()).body) as Seen).url, '/q');
  assert.equal(relayStats().added, before.added + 1, 'a path-routed connection is relayed');

  before = relayStats();
  const c = await RawClient.connect(t, live.port);
  const host = `Host: ${up.port}-${a}.${DOMAIN}\r\n`;
  for (let i = 0; i < 100; i++) {
    if (i % 3 === 1)
      c.send(`POST /item/${i} HTTP/1.1\r\n${host}Content-Length: ${String(i).length + 5}\r\n\r\nbody-${i}`);
    else c.send(`GET /item/${i}?q=${i} HTTP/1.1\r\n${host}\r\n`);
    const r = await c.response();
    assert.equal(r.status, 200);
    const s = JSON.parse(r.body) as Seen;
    assert.equal(s.url, i % 3 === 1 ? `/item/${i}` : `/item/${i}?q=${i}`);
    if (i % 3 === 1) assert.equal(s.body, `body-${i}`);
    // Every request carries X-Forwarded-*, the relayed ones too.
    assert.equal(s.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(s.headers['x-forwarded-host'], `${up.port}-${a}.${DOMAIN}`);
  }
  c.send(`GET /big HTTP/1.1\r\n${host}\r\n`);
  const big = await c.response();
  assert.equal(big.body.length, 128 * 64 * 1024);
  for (let i = 0; i < 128; i++) assert.equal(big.body.charCodeAt(i * 64 * 1024 + 7), i % 251, `block ${i}`);
  let after = relayStats();
  assert.equal(after.added, before.added + 1, 'the host-routed connection went to the relay once');
  assert.ok(after.bytes - before.bytes >= 128 * 64 * 1024, 'the relay thread carried the 8 MiB');
  assert.equal(
    new Set(up.seen.map((s) => s.conn)).size,
    2,
    'one upstream connection each for the path and the host connection',
  );
  c.socket.destroy();

  // Requests pipelined in one write on a fresh connection: what follows the routed head (a body,
  // the next requests) was already read by JS when the connection is handed over, and still goes
  // out once, in order.
  before = after;
  const piped = await RawClient.connect(t, live.port);
  piped.send(
    `POST /first HTTP/1.1\r\n${host}Content-Length: 6\r\n\r\nbody-1` +
      `GET /second HTTP/1.1\r\n${host}\r\n` +
      `POST /third HTTP/1.1\r\n${host}Content-Length: 6\r\n\r\nbody-3`,
  );
  const seen = [await piped.response(), await piped.response(), await piped.response()].map(
    (r) => JSON.parse(r.body) as Seen,
  );
  assert.deepEqual(
    seen.map((x) => [x.url, x.body]),
    [
      ['/first', 'body-1'],
      ['/second', ''],
      ['/third', 'body-3'],
    ],
  );
  after = relayStats();
  assert.equal(after.added, before.added + 1);

  // An 8 MiB upload as a fresh connection's first request: the handover happens mid-body.
  before = after;
  const uploader = await RawClient.connect(t, live.port);
  // Numbered lines (the upstream echoes the body as text): a lost, repeated or moved piece shows.
  const upload = Buffer.from(
    Array.from({ length: 1 << 20 }, (_, i) => `${i.toString(36).padStart(7, '0')}\n`).join(''),
    'latin1',
  );
  uploader.socket.write(`POST /upload HTTP/1.1\r\n${host}Content-Length: ${upload.length}\r\n\r\n`);
  uploader.socket.write(upload);
  const echoedUpload = JSON.parse((await uploader.response()).body) as Seen;
  assert.equal(echoedUpload.body.length, upload.length);
  assert.ok(echoedUpload.body === upload.toString('latin1'), 'the upload arrived whole and in order');
  assert.equal(relayStats().added, before.added + 1);
  after = relayStats();

  // A WebSocket: relayed after its 101, both ways, whole.
  before = after;
  const ws = new WebSocket(`ws://127.0.0.1:${live.port}/socket`, { headers: { host: `${up.port}-${a}.${DOMAIN}` } });
  t.after(() => ws.terminate());
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const payload = Buffer.alloc(1 << 20);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
  const got = new Promise<Buffer>((r) => ws.once('message', (m) => r(m as Buffer)));
  ws.send(payload);
  assert.ok((await got).equals(payload));
  after = relayStats();
  assert.equal(after.added, before.added + 1, 'the WebSocket went to the relay');
  assert.ok(after.bytes - before.bytes >= 2 * payload.length);
  // And it goes when its capsule goes.
  const closed = new Promise((r) => ws.once('close', r));
  await live.setState(a, 'stopped');
  await closed;
});

test("the relay's HTTP mode: path, host and header routing per request, framing, redirects, and handing the connection back", async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const { a = '', b = '' } = live.ids;
  const direct = {
    state: 'running' as const,
    hostId: 'host-local',
    agentUrl: 'http://127.0.0.1:1',
    capsuleAddress: '127.0.0.1',
    trafficToken: null,
    maskRequestHost: null,
  };
  live.cp.ctx.primeProxy(a, direct);
  live.cp.ctx.primeProxy(b, direct);
  const P = up.port;
  const prefix = `/proxy/${a}/${P}`;

  // Pipelined in one write: the first request is JS's, the rest the relay's.
  let before = relayStats();
  const c = await RawClient.connect(t, live.port);
  c.send(
    get(`${prefix}/first?x=1`) +
      `POST ${prefix}/len HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world` +
      `POST ${prefix}/chunks HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\nc\r\n3;ext=1\r\ndef\r\n0\r\nX-Trailer: 1\r\n\r\n` +
      get(`${prefix}/chunked`) +
      get(`${prefix}/redirect`) +
      get(`${prefix}/redirect-absolute`) +
      get(`${prefix}/elsewhere/redirect-absolute`) +
      `HEAD ${prefix}/head HTTP/1.1\r\nHost: localhost\r\n\r\n` +
      get(prefix) +
      get(`${prefix}?q=1`) +
      get(`${prefix}/hdr`, 'X-Forwarded-For: 10.0.0.1\r\nProxy-Authorization: secret\r\nX-Custom: kept\r\n'),
  );
  const seen = async () => JSON.parse((await c.response()).body) as Seen;
  assert.equal((await seen()).url, '/first?x=1');
  assert.equal((await seen()).body, 'hello world');
  assert.equal((await seen()).body, 'ab\r\ncdef');
  assert.equal((await c.response()).body, 'part1-part2');
  assert.equal((await c.response()).headers.location, `${prefix}/landed/`, 'a root-relative redirect keeps the prefix');
  const abs = await c.response();
  assert.equal(abs.status, 301);
  assert.equal(
    abs.headers.location,
    `${prefix}/abs/?x=1#top`,
    "an absolute redirect to the server's own address keeps the prefix",
  );
  assert.equal((await c.response()).headers.location, 'https://example.org/x', "another site's address is left alone");
  const head = await c.response();
  assert.equal(head.status, 200);
  assert.equal(head.body, '', 'HEAD: no body follows');
  assert.equal((await seen()).url, '/', '/proxy/<id>/<P> without a slash is the root');
  assert.equal((await seen()).url, '/?q=1');
  const hdr = await seen();
  assert.equal(hdr.url, '/hdr');
  assert.equal(hdr.headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
  assert.equal(hdr.headers['x-forwarded-host'], 'localhost');
  assert.equal(hdr.headers['proxy-authorization'], undefined);
  assert.equal(hdr.headers['x-custom'], 'kept');
  assert.equal(relayStats().added, before.added + 1, 'the connection went to the relay once');
  assert.equal(new Set(up.seen.map((s) => s.conn)).size, 1, 'one upstream connection');

  // Another route on the same connection: the relay hands it back; JS routes it (the API, another
  // capsule) and hands it to the relay again for the next capsule request.
  before = relayStats();
  c.send(get('/health'));
  assert.match((await c.response()).body, /"status"/);
  const c2 = await RawClient.connect(t, live.port);
  c2.send(get(`${prefix}/one`));
  assert.equal((await c2.response()).status, 200);
  c2.send(get(`/other`, `E2b-Sandbox-Id: ${b}\r\nE2b-Sandbox-Port: ${P}\r\n`));
  const other = JSON.parse((await c2.response()).body) as Seen;
  assert.equal(other.url, '/other');
  assert.equal(other.headers['e2b-sandbox-id'], b);
  c2.send(get(`/again`, `E2b-Sandbox-Id: ${b}\r\nE2b-Sandbox-Port: ${P}\r\n`));
  assert.equal((JSON.parse((await c2.response()).body) as Seen).url, '/again');
  c2.send(`GET /by-host HTTP/1.1\r\nHost: ${P}-${a}.${DOMAIN}\r\n\r\n`);
  assert.equal((JSON.parse((await c2.response()).body) as Seen).url, '/by-host');
  c2.send(`GET /by-host-2 HTTP/1.1\r\nHost: ${P}-${a}.${DOMAIN}\r\n\r\n`);
  const byHost = JSON.parse((await c2.response()).body) as Seen;
  assert.equal(byHost.url, '/by-host-2');
  assert.equal(byHost.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(relayStats().added, before.added + 3, 'path, header and host routing each went to the relay');

  // The server closes an idle keep-alive connection: the client's stays, the next request dials again.
  up.server.closeIdleConnections();
  await new Promise((r) => setTimeout(r, 100));
  c2.send(`GET /after-close HTTP/1.1\r\nHost: ${P}-${a}.${DOMAIN}\r\n\r\n`);
  assert.equal((JSON.parse((await c2.response()).body) as Seen).url, '/after-close');

  // A response that says close ends the client's connection after it.
  c2.send(`GET /close HTTP/1.1\r\nHost: ${P}-${a}.${DOMAIN}\r\n\r\n`);
  assert.equal((await c2.response()).body, 'bye');
  await c2.closed();

  // An upgrade on a relayed connection goes back to JS, which makes it a tunnel.
  const c3 = await RawClient.connect(t, live.port);
  c3.send(get(`${prefix}/x`));
  assert.equal((await c3.response()).status, 200);
  c3.send(
    get(
      `${prefix}/socket`,
      'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
    ),
  );
  const switched = await c3.response();
  assert.equal(switched.status, 101);

  // A paused capsule: the relay hands its connections back, so the next request gets the 502.
  const c4 = await RawClient.connect(t, live.port);
  c4.send(get(`${prefix}/y`));
  assert.equal((await c4.response()).status, 200);
  await live.setState(a, 'paused');
  await new Promise((r) => setTimeout(r, 50));
  c4.send(get(`${prefix}/z`));
  const paused = await c4.response();
  assert.equal(paused.status, 502);
  assert.match(paused.body, /is paused/);
});

test("the relay's HTTP mode: a request head not finished within 10 s between requests gets a 408", async (t) => {
  const up = await startUpstream(t);
  const live = await startLive(t, up.port);
  const a = live.ids.a ?? '';
  live.cp.ctx.primeProxy(a, {
    state: 'running',
    hostId: 'host-local',
    agentUrl: 'http://127.0.0.1:1',
    capsuleAddress: '127.0.0.1',
    trafficToken: null,
    maskRequestHost: null,
  });
  const before = relayStats();
  const c = await RawClient.connect(t, live.port);
  c.send(get(`/proxy/${a}/${up.port}/`));
  assert.equal((await c.response()).status, 200);
  assert.equal(relayStats().added, before.added + 1);
  c.send(`GET /proxy/${a}/${up.port}/ HTTP/1.1\r\nHost: loc`);
  const r = await c.response();
  assert.equal(r.status, 408);
  assert.equal(r.body, HEAD_TIMEOUT_BODY);
  await c.closed();
});

test('to a host whose agent serves TLS every path is pinned to its registered certificate', async (t) => {
  const certs = mkdtempSync(join(tmpdir(), 'wrenn-proxy-agent-tls-'));
  t.after(() => rmSync(certs, { recursive: true, force: true }));
  const served = loadAgentTls('self-signed', join(certs, 'served'), '127.0.0.1');
  const other = loadAgentTls('self-signed', join(certs, 'other'), '127.0.0.1');
  const up = await startUpstream(t, 0, { cert: served.cert, key: served.key });
  const mismatch = /did not present the TLS certificate it registered with/;
  const viaHttp1 = async (live: Live, path: string) => {
    const r = await fetch(`http://127.0.0.1:${live.port}${path}`, {
      headers: { 'e2b-sandbox-id': live.ids.a ?? '', 'e2b-sandbox-port': '8080' },
    });
    return { status: r.status, body: await r.text() };
  };
  const viaHttp2 = async (live: Live, path: string) => {
    const session = http2.connect(`https://127.0.0.1:${live.port}`, {
      ca: readFileSync(join(live.dataDir, 'tls', 'ca.crt')),
      servername: `api.${DOMAIN}`,
    });
    t.after(() => session.destroy());
    session.on('error', () => undefined);
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({
        ':path': path,
        ':authority': `api.${DOMAIN}`,
        'e2b-sandbox-id': live.ids.a ?? '',
        'e2b-sandbox-port': '8080',
      });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  };

  // Pinned to the certificate it serves: HTTP/1.1 (piped), a WebSocket (tunnel) and HTTP/2 (streams).
  const plain = await startLive(t, up.port, { a: 'running' }, { agentTlsCert: served.leafPem });
  const h1 = await viaHttp1(plain, '/over-tls');
  assert.equal(h1.status, 200, h1.body);
  assert.equal((JSON.parse(h1.body) as Seen).url, `/proxy/${plain.ids.a}/8080/over-tls`);
  const ws = new WebSocket(`ws://127.0.0.1:${plain.port}/ws`, {
    headers: { 'e2b-sandbox-id': plain.ids.a ?? '', 'e2b-sandbox-port': '8080' },
  });
  t.after(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send('hi');
  assert.equal(String(await new Promise((r) => ws.once('message', r))), 'echo:hi');
  const secure = await startLive(t, up.port, { a: 'running' }, { tls: true, agentTlsCert: served.leafPem });
  const h2 = await viaHttp2(secure, '/over-tls-h2');
  assert.equal(h2.status, 200, h2.body);
  assert.equal((JSON.parse(h2.body) as Seen).url, `/proxy/${secure.ids.a}/8080/over-tls-h2`);

  // Pinned to another certificate (an impostor at the address, or a stale registration): refused
  // with that reason on every path, and nothing reaches the server at the address.
  const before = up.seen.length;
  const wrong = await startLive(t, up.port, { a: 'running' }, { agentTlsCert: other.leafPem });
  const r1 = await viaHttp1(wrong, '/never');
  assert.equal(r1.status, 502);
  assert.match(r1.body, mismatch);
  const wrongSecure = await startLive(t, up.port, { a: 'running' }, { tls: true, agentTlsCert: other.leafPem });
  const r2 = await viaHttp2(wrongSecure, '/never-h2');
  assert.equal(r2.status, 502);
  assert.match(r2.body, mismatch);
  assert.equal(up.seen.length, before, 'no request reached the server that does not hold the pinned certificate');
});
