// Hostile probes of the API's edge (issue 14 items 9 and 10): callers without a key get their 401
// before any body is read, and the connection closes; slow heads, slow bodies and idle
// unauthenticated connections are cut off by the (configurable) timeouts while /health keeps
// answering; bad input gets 4xx in each API's own error shape, never 5xx. The first part runs
// against a control plane without hosts; the second against `wrenn up` with real capsules.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningControlPlane } from '../../src/server.js';
import { type Live, startLive } from '../../src/testing/live-up.js';
import { client, newTeamKey, openWs, startBareControlPlane } from '../native-helpers.js';

const EDGE = { headersTimeoutMs: 1500, bodyTimeoutMs: 1500 };
const BIG = 48 << 20;

/** Server-side bytes read per connection, by the client's local port. */
function serverReads(cp: RunningControlPlane): Map<number, number> {
  const reads = new Map<number, number>();
  cp.app.server.on('connection', (s: net.Socket) => {
    const port = s.remotePort ?? 0;
    s.once('close', () => reads.set(port, s.bytesRead));
  });
  return reads;
}

interface RawExchange {
  head: string;
  body: string;
  /** Bytes the client managed to hand to its kernel before the server closed. */
  written: number;
  /** The client's port (to look up what the server read). */
  port: number;
  closedByServer: boolean;
}

/**
 * Sends a request head announcing `bodyBytes` and then pushes the body as fast as the connection
 * takes it; resolves when the server has closed the connection (rejects if it never does).
 */
function pushBody(
  port: number,
  method: string,
  path: string,
  bodyBytes: number,
  headers: Record<string, string> = {},
  waitMs = 20_000,
): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let resp = Buffer.alloc(0);
    let closedByServer = false;
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`${method} ${path}: the server kept the connection open for ${waitMs} ms`));
    }, waitMs);
    s.on('data', (d: Buffer) => (resp = Buffer.concat([resp, d])));
    s.on('end', () => (closedByServer = true));
    s.on('error', () => (closedByServer = true));
    s.on('close', () => {
      clearTimeout(guard);
      const text = resp.toString('latin1');
      const i = text.indexOf('\r\n\r\n');
      resolve({
        head: i < 0 ? text : text.slice(0, i),
        body: i < 0 ? '' : text.slice(i + 4),
        written: s.bytesWritten,
        port: localPort,
        closedByServer,
      });
    });
    let localPort = 0;
    s.once('connect', () => {
      localPort = s.localPort ?? 0;
      const extra = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      s.write(
        `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${bodyBytes}\r\n${extra}\r\n`,
      );
      const chunk = Buffer.alloc(256 << 10, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < bodyBytes && !s.destroyed) {
          const n = Math.min(chunk.length, bodyBytes - sent);
          sent += n;
          if (!s.write(chunk.subarray(0, n))) return void s.once('drain', pump);
        }
      };
      pump();
    });
  });
}

const statusOf = (head: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
const hasClose = (head: string): boolean => /\r\nconnection: close\r\n/i.test(`${head}\r\n`);

/** Opens a connection that writes `first`, then one byte every `everyMs`; resolves when the server closes it. */
function trickle(
  port: number,
  first: string,
  everyMs: number,
  waitMs: number,
): Promise<{ status: number; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let resp = '';
    const t = setInterval(() => s.writable && s.write(' '), everyMs);
    const guard = setTimeout(() => {
      clearInterval(t);
      s.destroy();
      resolve({ status: statusOf(resp), closed: false });
    }, waitMs);
    s.on('data', (d: Buffer) => (resp += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(t);
      clearTimeout(guard);
      resolve({ status: statusOf(resp), closed: true });
    });
    s.once('connect', () => {
      if (first) s.write(first);
    });
  });
}

describe('API edge: authentication before the body, timeouts, limits', () => {
  test('a 48 MB body without a valid key gets its 401 and a closed connection; the server reads almost none of it', async (t) => {
    const cp = await startBareControlPlane(t, 'sqlite');
    const reads = serverReads(cp);
    const cases: Array<[string, 'e2b' | 'native', Record<string, string>]> = [
      ['/sandboxes', 'e2b', {}],
      ['/v2/sandboxes', 'e2b', { 'x-api-key': `wrn_${'a'.repeat(32)}` }],
      ['/v1/capsules', 'native', {}],
      ['/v1/capsules', 'native', { authorization: 'Bearer wrn_not_a_key' }],
      ['/v1/hosts/tokens', 'native', {}],
    ];
    for (const [path, shape, headers] of cases) {
      const r = await pushBody(cp.port, 'POST', path, BIG, headers);
      assert.equal(statusOf(r.head), 401, `${path}: ${r.head}`);
      assert.ok(hasClose(r.head), `${path}: the 401 says Connection: close (${r.head})`);
      assert.ok(r.closedByServer, `${path}: the server closed the connection`);
      const body = JSON.parse(r.body) as Record<string, unknown>;
      if (shape === 'e2b') {
        assert.equal(body.code, 401);
        assert.match(String(body.message), /API key/);
      } else {
        assert.equal((body.error as { code: string }).code, 'unauthenticated');
      }
      await sleep(50);
      const read = reads.get(r.port);
      assert.ok(read !== undefined, `${path}: the server saw the connection close`);
      assert.ok(read < 4 << 20, `${path}: the server read ${read} of ${BIG} bytes`);
      t.diagnostic(`${path}: server read ${read} bytes, the client got ${r.written} bytes out before the close`);
    }
    // A route that does not exist reads no body either.
    const nf = await pushBody(cp.port, 'POST', '/no/such/route', BIG);
    assert.equal(statusOf(nf.head), 404);
    assert.ok(hasClose(nf.head));
    await sleep(50);
    assert.ok((reads.get(nf.port) ?? BIG) < 4 << 20);
  });

  test('slow heads, slow bodies and idle connections without a key are closed by the timeouts; /health keeps answering', async (t) => {
    const cp = await startBareControlPlane(t, 'sqlite', EDGE);
    cp.ctx.readiness.ready = true;
    const wait = EDGE.headersTimeoutMs + 10_000;
    const attacks: Promise<{ status: number; closed: boolean }>[] = [];
    // 100 slow bodies without a key (as in the issue), 50 slow heads, 50 silent connections.
    for (let i = 0; i < 100; i++) {
      const path = i % 2 === 0 ? '/sandboxes' : '/v1/capsules';
      attacks.push(
        trickle(
          cp.port,
          `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{`,
          200,
          wait,
        ),
      );
    }
    for (let i = 0; i < 50; i++)
      attacks.push(trickle(cp.port, 'POST /sandboxes HTTP/1.1\r\nhost: x\r\nx-slow:', 200, wait));
    for (let i = 0; i < 50; i++) attacks.push(trickle(cp.port, '', 1_000_000, wait));
    let healthy = 0;
    const health = (async () => {
      for (let i = 0; i < 10; i++) {
        const r = await fetch(`${cp.url}/health`);
        assert.equal(r.status, 200);
        healthy++;
        await sleep(200);
      }
    })();
    const results = await Promise.all(attacks);
    await health;
    const open = results.filter((r) => !r.closed).length;
    assert.equal(open, 0, `${open} of ${results.length} attacking connections were still open after ${wait} ms`);
    assert.ok(
      results.slice(0, 100).every((r) => r.status === 401),
      'every slow body without a key got its 401',
    );
    assert.ok(
      results.slice(100, 150).every((r) => r.status === 408 || r.status === 0),
      'slow heads got a 408 or were cut',
    );
    assert.equal(healthy, 10);
  });

  test('after a response to a request without a key the connection may idle only the short timeout', async (t) => {
    const cp = await startBareControlPlane(t, 'sqlite', EDGE);
    const r = await trickle(
      cp.port,
      'GET /health HTTP/1.1\r\nhost: x\r\n\r\n',
      1_000_000,
      EDGE.headersTimeoutMs + 10_000,
    );
    assert.ok(r.closed, 'the idle keep-alive connection was closed');
    assert.equal(r.status, 503, 'and /health answered first (no host yet)');
  });

  test('a stalled or too slow body with a valid key gets 408 (each API in its shape); an oversized one 413', async (t) => {
    const cp = await startBareControlPlane(t, 'sqlite', EDGE);
    const { key } = await newTeamKey(cp);
    const stall = (path: string) =>
      trickle(
        cp.port,
        `POST ${path} HTTP/1.1\r\nhost: x\r\nx-api-key: ${key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a`,
        1_000_000,
        EDGE.bodyTimeoutMs + 10_000,
      );
    const [n, e] = await Promise.all([stall('/v1/capsules'), stall('/sandboxes')]);
    assert.deepEqual(n, { status: 408, closed: true });
    assert.deepEqual(e, { status: 408, closed: true });
    // A body that trickles in forever is cut too (a JSON body must arrive whole within the timeout).
    const slow = await trickle(
      cp.port,
      `POST /v1/capsules HTTP/1.1\r\nhost: x\r\nx-api-key: ${key}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{`,
      100,
      EDGE.bodyTimeoutMs + 10_000,
    );
    assert.deepEqual(slow, { status: 408, closed: true });

    const big = { env: { A: 'x'.repeat(2 << 20) } };
    const native = await client(cp.url, key)('POST', '/v1/capsules', big);
    assert.equal(native.status, 413);
    assert.equal(native.body.error.code, 'payload_too_large');
    assert.match(native.body.error.message, /1048576 bytes/);
    const e2b = await client(cp.url, key)('POST', '/sandboxes', { templateID: 'minimal', envVars: big.env });
    assert.equal(e2b.status, 413);
    assert.deepEqual(Object.keys(e2b.body).sort(), ['code', 'message']);
    assert.equal(e2b.body.code, 413);
  });

  test('bad input that needs no capsule: 400 (or 414) in each API shape, never 5xx', async (t) => {
    const cp = await startBareControlPlane(t, 'sqlite');
    const { key } = await newTeamKey(cp);
    const call = client(cp.url, key);
    const nat = async (method: string, path: string, body: unknown, status: number, re: RegExp) => {
      const r = await call(method, path, body);
      assert.equal(r.status, status, `${method} ${path.slice(0, 80)} -> ${r.status} ${r.text.slice(0, 300)}`);
      assert.match(r.body.error.message, re);
      assert.equal(typeof r.body.error.code, 'string');
    };
    const e2b = async (method: string, path: string, body: unknown, status: number, re: RegExp) => {
      const r = await call(method, path, body);
      assert.equal(r.status, status, `${method} ${path.slice(0, 80)} -> ${r.status} ${r.text.slice(0, 300)}`);
      assert.deepEqual(Object.keys(r.body).sort(), ['code', 'message']);
      assert.equal(r.body.code, status);
      assert.match(r.body.message, re);
    };
    await nat(
      'POST',
      '/v1/capsules',
      { runtime: 'bogus' },
      400,
      /runtime 'bogus' does not exist; use one of namespace, qemu, firecracker/,
    );
    // A runtime that exists but no host of this deployment offers: the caller's mistake, not an outage.
    await nat(
      'POST',
      '/v1/capsules',
      { runtime: 'firecracker' },
      400,
      /no host of this deployment offers runtime 'firecracker'/,
    );
    const env = { A: 'x'.repeat(200 << 10) };
    await nat('POST', '/v1/capsules', { env }, 400, /env takes at most 65536 bytes/);
    await e2b('POST', '/sandboxes', { templateID: 'minimal', envVars: env }, 400, /env takes at most 65536 bytes/);
    // Metadata is exported into the capsule's environment too: a NUL there would fail its start.
    await nat('POST', '/v1/capsules', { metadata: { 'a\u0000b': 'x' } }, 400, /NUL byte/);
    await e2b('POST', '/sandboxes', { templateID: 'minimal', metadata: { a: 'x\u0000y' } }, 400, /NUL byte/);
    const many = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`K${i}`, 'v'.repeat(30)]));
    await nat('POST', '/v1/capsules', { env: many }, 400, /env takes at most/);
    for (const path of [
      '/processes/1099511627776',
      '/processes/4294967296',
      '/processes/0',
      '/processes/-1',
      '/processes/1e30',
    ]) {
      await nat('DELETE', `/v1/capsules/cl-x${path}`, undefined, 400, /params\/pid must be/);
    }
    await nat(
      'POST',
      '/v1/capsules/cl-x/processes/1099511627776/stdin',
      { close: true },
      400,
      /params\/pid must be <= 4194304/,
    );
    await nat('DELETE', `/v1/templates/${'x'.repeat(3000)}`, undefined, 414, /longer than 100 characters/);
    await e2b('DELETE', `/templates/${'x'.repeat(3000)}`, undefined, 414, /longer than 100 characters/);
    await e2b('POST', `/sandboxes/${'x'.repeat(300)}/pause`, {}, 414, /longer than 100 characters/);
    // Sandbox traffic by header takes any string as the id: one that cannot be an id is E2B's
    // "not found" 502, with the id cut to 80 characters.
    const notAnId = await fetch(`${cp.url}/`, {
      headers: { 'e2b-sandbox-id': `../${'x'.repeat(4000)}`, 'e2b-sandbox-port': '49983' },
    });
    assert.equal(notAnId.status, 502);
    const nb = (await notAnId.json()) as { message: string; sandboxId: string };
    assert.equal(nb.message, 'The sandbox was not found');
    assert.equal(nb.sandboxId.length, 80);
    const badUrl = await fetch(`${cp.url}/sandboxes/%zz`, { headers: { 'x-api-key': key } });
    assert.equal(badUrl.status, 400);
    assert.deepEqual(Object.keys((await badUrl.json()) as object).sort(), ['code', 'message']);
  });

  test('WebSocket upgrades without a key are refused before any capsule lookup or upgrade', async (t) => {
    const cp = await startBareControlPlane(t, 'sqlite');
    const ws = cp.url.replace('http', 'ws');
    for (const path of [
      '/v1/capsules/cl-x/pty',
      '/v1/capsules/cl-x/commands',
      '/v1/capsules/cl-x/exec/stream',
      '/v1/capsules/cl-x/processes/1/connect',
      '/v1/capsules/cl-x/files/watch?path=/',
    ]) {
      await assert.rejects(openWs(`${ws}${path}`), (e: { status?: number }) => e.status === 401, path);
    }
    // Outside /v1 nothing takes an upgrade: public pages and the E2B API refuse it without a handshake.
    for (const path of ['/sandboxes', '/health', '/docs', '/no-such-page']) {
      await assert.rejects(
        openWs(`${ws}${path}`),
        (e: { status?: number; body?: string }) => e.status === 404 && /no WebSocket route/.test(e.body ?? ''),
        path,
      );
    }
  });
});

describe('API edge against wrenn up with capsules', { concurrency: false }, () => {
  let live: Live | undefined;
  const saved = { h: process.env.WRENN_HEADERS_TIMEOUT_MS, b: process.env.WRENN_BODY_TIMEOUT_MS };
  before(async () => {
    // The timeouts come from the environment here, as they do for `wrenn up`.
    process.env.WRENN_HEADERS_TIMEOUT_MS = String(EDGE.headersTimeoutMs);
    process.env.WRENN_BODY_TIMEOUT_MS = String(EDGE.bodyTimeoutMs);
    live = await startLive(8, 'api-edge');
  });
  after(async () => {
    for (const [k, v] of [
      ['WRENN_HEADERS_TIMEOUT_MS', saved.h],
      ['WRENN_BODY_TIMEOUT_MS', saved.b],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await live?.close();
  });

  test('the three 5xx inputs of the issue and their siblings get 4xx with a message; the capsule keeps working', async () => {
    const sys = live!;
    const call = client(sys.url, sys.apiKey);
    const made = await call('POST', '/v1/capsules', { template: 'minimal' });
    assert.equal(made.status, 201, made.text);
    const id = made.body.id as string;
    const P = `/v1/capsules/${id}`;

    // 1. uint32 overflow of a pid: the running capsule is there, the pid is refused at the edge.
    const kill = await call('DELETE', `${P}/processes/1099511627776`);
    assert.equal(kill.status, 400, kill.text);
    assert.match(kill.body.error.message, /params\/pid must be <= 4194304/);
    const stdin = await call('POST', `${P}/processes/1099511627776/stdin`, { close: true });
    assert.equal(stdin.status, 400, stdin.text);
    await assert.rejects(
      openWs(`${sys.url.replace('http', 'ws')}${P}/processes/1099511627776/connect`, { 'x-api-key': sys.apiKey }),
      (e: { status?: number }) => e.status === 400,
    );
    assert.equal(
      (await call('DELETE', `${P}/processes/4194304`)).status,
      404,
      'a pid in range that does not run is a 404',
    );

    // 2. An env too large for the capsule (2 MB is over the body limit: 413; 200 KB fits the body: 400).
    const huge = await call('POST', '/v1/capsules', { env: { A: 'x'.repeat(2 << 20) } });
    assert.equal(huge.status, 413, huge.text);
    const env = { A: 'x'.repeat(200 << 10) };
    for (const [path, body] of [
      ['/v1/capsules', { env }],
      [`${P}/exec`, { cmd: 'true', env }],
    ] as const) {
      const r = await call('POST', path, body);
      assert.equal(r.status, 400, `${path}: ${r.text.slice(0, 300)}`);
      assert.match(r.body.error.message, /env takes at most 65536 bytes/);
    }
    const e2b = await call('POST', '/sandboxes', { templateID: 'minimal', envVars: env });
    assert.equal(e2b.status, 400, e2b.text.slice(0, 300));
    assert.deepEqual(e2b.body, { code: 400, message: e2b.body.message });
    // The same rule on the WebSocket command routes: an error message, then the close.
    const ws = await openWs(`${sys.url.replace('http', 'ws')}${P}/commands`, { 'x-api-key': sys.apiKey });
    const msgs: string[] = [];
    ws.on('message', (d) => msgs.push(String(d)));
    const closed = new Promise((r) => ws.once('close', r));
    ws.send(JSON.stringify({ cmd: 'true', env }));
    await closed;
    assert.match(msgs.join('\n'), /env takes at most 65536 bytes/);

    // 3. A runtime that does not exist, or that no host here offers.
    const bogus = await call('POST', '/v1/capsules', { runtime: 'bogus' });
    assert.equal(bogus.status, 400, bogus.text);
    assert.match(bogus.body.error.message, /use one of namespace, qemu, firecracker/);
    const offered = ((await call('GET', '/v1/hosts')).body.hosts as Array<{ runtimes: string[] }>).flatMap(
      (h) => h.runtimes,
    );
    if (!offered.includes('firecracker')) {
      const fc = await call('POST', '/v1/capsules', { runtime: 'firecracker' });
      assert.equal(fc.status, 400, fc.text);
      assert.match(fc.body.error.message, /no host of this deployment offers runtime 'firecracker'/);
    }

    // The capsule (the neighbour of every refused request) still works.
    const r = await call('POST', `${P}/exec`, { cmd: 'echo still here' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.stdout, 'still here\n');
    assert.equal((await call('DELETE', P)).status, 204);
  });

  test('unauthenticated floods do not stop a capsule from working', async (t) => {
    const sys = live!;
    const call = client(sys.url, sys.apiKey);
    const made = await call('POST', '/v1/capsules', { template: 'minimal' });
    assert.equal(made.status, 201, made.text);
    const P = `/v1/capsules/${made.body.id as string}`;
    const port = Number(new URL(sys.url).port);
    const floods = [
      ...Array.from({ length: 4 }, (_, i) => pushBody(port, 'POST', i % 2 ? '/sandboxes' : '/v1/capsules', BIG)),
      ...Array.from({ length: 100 }, (_, i) =>
        trickle(
          port,
          `POST ${i % 2 ? '/sandboxes' : '/v1/capsules'} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n`,
          200,
          EDGE.headersTimeoutMs + 10_000,
        ),
      ),
    ];
    let execs = 0;
    for (let i = 0; i < 5; i++) {
      const r = await call('POST', `${P}/exec`, { cmd: `echo ${i}` });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.stdout, `${i}\n`);
      execs++;
    }
    const results = await Promise.all(floods);
    for (const x of results) {
      if ('head' in x) assert.equal(statusOf(x.head), 401);
      else assert.deepEqual(x, { status: 401, closed: true });
    }
    t.diagnostic(`${execs} commands ran in the capsule during ${results.length} unauthenticated attacking connections`);
    assert.equal((await call('DELETE', P)).status, 204);
  });
});
