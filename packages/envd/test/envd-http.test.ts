// envd's HTTP surface end to end over real sockets: /health, /init, /envs, /metrics, the access
// token on routes and RPCs, HTTP/1.1 and h2c on one port, both Connect encodings, bad requests.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { ENVD_VERSION } from '../src/version.js';
import { startTestEnvd, type TestEnvd } from './helpers.js';

async function withEnvd(t: { after(fn: () => Promise<void>): void }): Promise<TestEnvd> {
  const envd = await startTestEnvd({ portForwarding: false });
  t.after(() => envd.close());
  return envd;
}

function post(envd: TestEnvd, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${envd.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function expectCode(promise: Promise<unknown>, code: Code): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${Code[code]}, got ${Code[err.code]}: ${err.message}`);
    return true;
  });
}

/** Runs a command through process.Start; returns stdout and the exit code. */
async function run(
  client: Client<typeof Process>,
  script: string,
  headers?: Record<string, string>,
): Promise<{ stdout: string; exitCode: number }> {
  let stdout = '';
  let exitCode = -1;
  for await (const res of client.start({ process: { cmd: '/bin/sh', args: ['-c', script] } }, { headers })) {
    const ev = res.event?.event;
    if (ev?.case === 'data' && ev.value.output.case === 'stdout')
      stdout += Buffer.from(ev.value.output.value).toString();
    if (ev?.case === 'end') exitCode = ev.value.exitCode;
  }
  return { stdout, exitCode };
}

function h2Request(
  port: number,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
  body?: Buffer | string,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST', ...headers });
    let data = '';
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      head = h;
    });
    req.on('data', (d: Buffer) => {
      data += d.toString();
    });
    req.on('end', () => {
      session.close();
      resolve({ status: Number(head[':status']), headers: head, body: data });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('GET /health', () => {
  test('answers 204 with the envd version over HTTP/1.1 and h2c on the same port', async (t) => {
    const envd = await withEnvd(t);
    const h1 = await fetch(`${envd.baseUrl}/health`);
    assert.equal(h1.status, 204);
    assert.equal(h1.headers.get('x-envd-version'), ENVD_VERSION);
    const h2 = await h2Request(envd.server.port, '/health');
    assert.equal(h2.status, 204);
    assert.equal(h2.headers['x-envd-version'], ENVD_VERSION);
  });
});

describe('POST /init and GET /envs', () => {
  test('env vars set by /init show in /envs and merge with later ones', async (t) => {
    const envd = await withEnvd(t);
    assert.equal((await post(envd, '/init', { envVars: { A: '1', B: 'two words' } })).status, 204);
    assert.equal((await post(envd, '/init', { envVars: { B: 'changed', C: '3' } })).status, 204);
    const envs = (await (await fetch(`${envd.baseUrl}/envs`)).json()) as Record<string, string>;
    assert.equal(envs.A, '1');
    assert.equal(envs.B, 'changed');
    assert.equal(envs.C, '3');
  });

  test('an empty body is accepted; invalid JSON and non-string env values are refused with 400', async (t) => {
    const envd = await withEnvd(t);
    assert.equal((await fetch(`${envd.baseUrl}/init`, { method: 'POST' })).status, 204);
    const bad = await post(envd, '/init', '{not json');
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { code: number; message: string };
    assert.equal(body.code, 400);
    assert.match(body.message, /JSON/);
    assert.equal((await post(envd, '/init', { envVars: { A: 1 } })).status, 400);
    assert.equal((await post(envd, '/init', { timestamp: 'yesterday' })).status, 400);
  });

  test('defaultUser and defaultWorkdir are stored for later requests', async (t) => {
    const envd = await withEnvd(t);
    assert.equal((await post(envd, '/init', { defaultUser: 'nobody', defaultWorkdir: '/tmp' })).status, 204);
    assert.equal(envd.server.state.defaultUser, 'nobody');
    assert.equal(envd.server.state.defaultWorkdir, '/tmp');
  });

  test('env vars and the default user and workdir apply to processes', async (t) => {
    const envd = await withEnvd(t);
    const dir = mkdtempSync(join(tmpdir(), 'wrenn-envd-init-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('chmod', ['755', dir]);
    await post(envd, '/init', { envVars: { WRENN_TEST_VAR: 'from init' }, defaultUser: 'nobody', defaultWorkdir: dir });
    const r = await run(envd.process, 'echo "$WRENN_TEST_VAR"; id -un; pwd');
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, `from init\nnobody\n${dir}\n`);
  });
});

describe('access token', () => {
  test('once /init set a token, routes answer 401 and RPCs unauthenticated without it or with a wrong one', async (t) => {
    const envd = await withEnvd(t);
    assert.equal((await post(envd, '/init', { accessToken: 'token-one', envVars: { K: 'v' } })).status, 204);

    const attempts: Record<string, string>[] = [
      {},
      { 'x-access-token': 'wrong' },
      { 'x-access-token': 'token-one-and-more' },
    ];
    for (const headers of attempts) {
      for (const path of ['/envs', '/metrics']) {
        const res = await fetch(`${envd.baseUrl}${path}`, { headers });
        assert.equal(res.status, 401, `${path} with ${JSON.stringify(headers)}`);
        assert.equal(((await res.json()) as { code: number }).code, 401);
      }
      await expectCode(envd.filesystem.stat({ path: '/' }, { headers }), Code.Unauthenticated);
      await expectCode(envd.process.list({}, { headers }), Code.Unauthenticated);
      const h2 = await h2Request(envd.server.port, '/envs', headers);
      assert.equal(h2.status, 401);
    }

    const good = { 'x-access-token': 'token-one' };
    const envs = await fetch(`${envd.baseUrl}/envs`, { headers: good });
    assert.equal(envs.status, 200);
    assert.equal(((await envs.json()) as Record<string, string>).K, 'v');
    assert.equal((await fetch(`${envd.baseUrl}/metrics`, { headers: good })).status, 200);
    // Past the token check: the RPC itself answers (or says which part is missing).
    await envd.filesystem.stat({ path: '/' }, { headers: good }).catch((err: unknown) => {
      assert.ok(err instanceof ConnectError && err.code !== Code.Unauthenticated, String(err));
    });
    // Health stays public.
    assert.equal((await fetch(`${envd.baseUrl}/health`)).status, 204);
  });

  test('changing the token needs the current one; the old one stops working', async (t) => {
    const envd = await withEnvd(t);
    await post(envd, '/init', { accessToken: 'first' });
    assert.equal((await post(envd, '/init', { accessToken: 'mine-now' })).status, 401);
    assert.equal((await post(envd, '/init', { accessToken: 'mine-now' }, { 'x-access-token': 'wrong' })).status, 401);
    assert.equal((await post(envd, '/init', { accessToken: 'second' }, { 'x-access-token': 'first' })).status, 204);
    assert.equal((await fetch(`${envd.baseUrl}/envs`, { headers: { 'x-access-token': 'first' } })).status, 401);
    assert.equal((await fetch(`${envd.baseUrl}/envs`, { headers: { 'x-access-token': 'second' } })).status, 200);
  });
});

describe('GET /metrics', () => {
  test('returns the E2B Metrics fields with consistent values', async (t) => {
    const envd = await withEnvd(t);
    const res = await fetch(`${envd.baseUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const m = (await res.json()) as Record<string, number>;
    const fields = [
      'ts',
      'cpu_count',
      'cpu_used_pct',
      'mem_total',
      'mem_used',
      'mem_cache',
      'mem_total_mib',
      'mem_used_mib',
      'disk_used',
      'disk_total',
    ];
    assert.deepEqual(Object.keys(m).sort(), [...fields].sort());
    for (const f of fields) assert.equal(typeof m[f], 'number', f);
    assert.ok(Math.abs(m.ts! - Date.now() / 1000) < 60, `ts ${m.ts} is not now`);
    assert.ok(m.cpu_count! >= 1);
    assert.ok(m.cpu_used_pct! >= 0 && m.cpu_used_pct! <= 100);
    assert.ok(m.mem_used! > 0 && m.mem_used! <= m.mem_total!);
    assert.equal(m.mem_total_mib, Math.floor(m.mem_total! / 1048576));
    assert.equal(m.mem_used_mib, Math.floor(m.mem_used! / 1048576));
    assert.ok(m.disk_used! > 0 && m.disk_used! <= m.disk_total!);
    // Disk: the same numbers `df` prints for /. Size exactly; used moves with other writers, so within 1 GiB.
    const [, size, used, avail] = execFileSync('df', ['-B1', '--output=source,size,used,avail', '/'], {
      encoding: 'utf8',
    })
      .trim()
      .split('\n')[1]!
      .trim()
      .split(/\s+/)
      .map(Number);
    assert.equal(m.disk_total, size);
    assert.ok(Math.abs(m.disk_used! - (size! - avail!)) < 2 ** 30, `disk_used ${m.disk_used} vs df ${used}`);
    // Memory total: this process's cgroup limit when it has one below the machine's RAM, else MemTotal.
    const memTotal = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
    assert.ok(m.mem_total! <= memTotal);
  });

  test('cpu_used_pct rises while the capsule burns CPU', async (t) => {
    const envd = await withEnvd(t);
    await fetch(`${envd.baseUrl}/metrics`); // first sample
    const until = Date.now() + 600;
    while (Date.now() < until) {
      // one core fully busy (envd runs in this process, so the request waits for the loop)
    }
    const m = (await (await fetch(`${envd.baseUrl}/metrics`)).json()) as { cpu_used_pct: number; cpu_count: number };
    // One busy core out of cpu_count; allow for the sample window being a little longer than the loop.
    assert.ok(m.cpu_used_pct >= 50 / m.cpu_count, `cpu_used_pct ${m.cpu_used_pct} with ${m.cpu_count} cores`);
  });
});

describe('Connect RPC routing', () => {
  const variants = [
    { name: 'HTTP/1.1 JSON', httpVersion: '1.1', useBinaryFormat: false },
    { name: 'HTTP/1.1 binary', httpVersion: '1.1', useBinaryFormat: true },
    { name: 'h2c JSON', httpVersion: '2', useBinaryFormat: false },
    { name: 'h2c binary', httpVersion: '2', useBinaryFormat: true },
  ] as const;

  test('filesystem.Stat and process.List answer in both encodings over HTTP/1.1 and h2c on one port', async (t) => {
    const envd = await withEnvd(t);
    for (const v of variants) {
      const transport = createConnectTransport({
        baseUrl: envd.baseUrl,
        httpVersion: v.httpVersion,
        useBinaryFormat: v.useBinaryFormat,
      });
      const fs = createClient(Filesystem, transport);
      const proc = createClient(Process, transport);
      const st = await fs.stat({ path: '/tmp' });
      assert.equal(st.entry?.name, 'tmp', v.name);
      assert.equal(st.entry?.path, '/tmp', v.name);
      const list = await proc.list({});
      assert.ok(Array.isArray(list.processes), v.name);
    }
  });

  test('a malformed JSON body is invalid_argument; a malformed binary one is refused', async (t) => {
    const envd = await withEnvd(t);
    const json = await post(envd, '/filesystem.Filesystem/Stat', '{"path": ');
    assert.equal(json.status, 400);
    assert.equal(((await json.json()) as { code: string }).code, 'invalid_argument');
    const wrongType = await post(envd, '/filesystem.Filesystem/Stat', { path: 42 });
    assert.equal(wrongType.status, 400);
    assert.equal(((await wrongType.json()) as { code: string }).code, 'invalid_argument');
    // The binary encoding is refused too (see the next test for the code it carries).
    const binary = await fetch(`${envd.baseUrl}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: { 'content-type': 'application/proto' },
      body: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    });
    assert.ok(binary.status >= 400, `binary garbage answered ${binary.status}`);
    const h2 = await h2Request(
      envd.server.port,
      '/process.Process/List',
      { 'content-type': 'application/json' },
      '[1,2',
    );
    assert.equal(h2.status, 400);
    assert.equal((JSON.parse(h2.body) as { code: string }).code, 'invalid_argument');
  });

  test('a malformed binary body is invalid_argument, as connect-go (E2B envd) answers', {}, async (t) => {
    const envd = await withEnvd(t);
    const res = await fetch(`${envd.baseUrl}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: { 'content-type': 'application/proto' },
      body: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    });
    assert.equal(((await res.json()) as { code: string }).code, 'invalid_argument');
    assert.equal(res.status, 400);
  });

  test('an unknown method or service is 404, which Connect clients read as unimplemented', async (t) => {
    const envd = await withEnvd(t);
    for (const path of ['/filesystem.Filesystem/NoSuchMethod', '/nosuch.Service/Stat']) {
      const res = await post(envd, path, {});
      assert.equal(res.status, 404, path);
    }
    // A client for a service this envd does not have: a renamed copy of filesystem.Filesystem.
    const fake = { ...Filesystem, typeName: 'filesystem.NoSuchService' } as typeof Filesystem;
    const stat = { ...Filesystem.method.stat, parent: fake };
    Object.assign(fake, { methods: [stat], method: { ...Filesystem.method, stat } });
    const client = createClient(fake, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: '1.1' }));
    await expectCode(client.stat({ path: '/' }), Code.Unimplemented);
  });
});
