// The unary fast path (src/rpc-fast/unary-fast-path.ts) against connect-es's router: the same call
// goes to `/<service>/<Method>` (fast path) and `/<service>/<Method>?via=router` (a query string
// hands it to the router), over HTTP/1.1 and h2c, as JSON and binary; status, content type,
// compression and body must be the same, for results and for errors.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { create, type DescMessage, type MessageInitShape, toBinary, toJson } from '@bufbuild/protobuf';
import { ListDirRequestSchema, StatRequestSchema } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { ListRequestSchema, SendSignalRequestSchema } from '@wrenn/protocol/gen/envd/process_pb';
import { unaryFastPathStats } from '../src/rpc-fast/unary-fast-path.js';
import { startTestEnvd, type TestEnvd, userHeader } from './helpers.js';

type Proto = 'h1' | 'h2';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function post(
  envd: TestEnvd,
  proto: Proto,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<Reply> {
  const url = new URL(envd.baseUrl);
  if (proto === 'h1') {
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        headers: { ...headers, 'content-length': body.length },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      });
      req.end(body);
    });
  }
  return new Promise((resolve, reject) => {
    const session = http2.connect(url.origin);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, ...headers });
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const { ':status': status, ...rest } = head;
      session.close();
      resolve({ status: Number(status), headers: rest, body: Buffer.concat(chunks) });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

function encode<D extends DescMessage>(binary: boolean, schema: D, init: MessageInitShape<D>): Buffer {
  const msg = create(schema, init);
  return binary ? Buffer.from(toBinary(schema, msg)) : Buffer.from(JSON.stringify(toJson(schema, msg)));
}

function summary(r: Reply) {
  const encoding = r.headers['content-encoding'];
  return {
    status: r.status,
    contentType: r.headers['content-type'],
    encoding,
    trailers: Object.keys(r.headers).filter((k) => k.startsWith('trailer-')),
    body: (encoding === 'gzip' ? gunzipSync(r.body) : r.body).toString('base64'),
  };
}

async function bothWays(
  envd: TestEnvd,
  proto: Proto,
  binary: boolean,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
) {
  const h = {
    'content-type': binary ? 'application/proto' : 'application/json',
    'connect-protocol-version': '1',
    ...headers,
  };
  const before = unaryFastPathStats.calls;
  const fast = await post(envd, proto, path, h, body);
  assert.equal(unaryFastPathStats.calls, before + 1, `${path} is served by the fast path`);
  const router = await post(envd, proto, `${path}?via=router`, h, body);
  assert.equal(unaryFastPathStats.calls, before + 1, 'a query string goes to the router');
  return { fast: summary(fast), router: summary(router), raw: fast };
}

for (const proto of ['h1', 'h2'] as const) {
  for (const binary of [false, true]) {
    describe(`unary fast path = router (${binary ? 'binary' : 'JSON'} over ${proto === 'h1' ? 'HTTP/1.1' : 'h2c'})`, () => {
      let envd: TestEnvd;
      let dir: string;
      before(async () => {
        envd = await startTestEnvd();
        dir = mkdtempSync(join(tmpdir(), 'wrenn-unary-fast-'));
        for (let i = 0; i < 60; i++) writeFileSync(join(dir, `file-with-a-longish-name-${i}.txt`), `content ${i}\n`);
      });
      after(async () => {
        envd.server.state.accessToken = undefined;
        await envd.close();
        rmSync(dir, { recursive: true, force: true });
      });

      test('results: Stat, ListDir (compressed when large and accepted), List of running processes', async () => {
        const stat = await bothWays(
          envd,
          proto,
          binary,
          '/filesystem.Filesystem/Stat',
          {},
          encode(binary, StatRequestSchema, { path: join(dir, 'file-with-a-longish-name-1.txt') }),
        );
        assert.deepEqual(stat.fast, stat.router);
        assert.equal(stat.fast.status, 200);
        assert.equal(stat.fast.contentType, binary ? 'application/proto' : 'application/json');

        const list = await bothWays(
          envd,
          proto,
          binary,
          '/filesystem.Filesystem/ListDir',
          { 'accept-encoding': 'gzip' },
          encode(binary, ListDirRequestSchema, { path: dir, depth: 1 }),
        );
        assert.deepEqual(list.fast, list.router);
        assert.equal(list.fast.encoding, 'gzip', 'a large answer is compressed');
        assert.ok(Number(list.raw.headers['content-length']) < gunzipSync(list.raw.body).length);

        const small = await bothWays(
          envd,
          proto,
          binary,
          '/filesystem.Filesystem/Stat',
          { 'accept-encoding': 'gzip' },
          encode(binary, StatRequestSchema, { path: dir }),
        );
        assert.deepEqual(small.fast, small.router);
        assert.equal(small.fast.encoding, undefined, 'a small answer is not compressed');

        const running = await envd.process
          .start({ process: { cmd: '/bin/sleep', args: ['30'] }, tag: `unary-${proto}-${binary}` })
          [Symbol.asyncIterator]()
          .next();
        const pid = running.value?.event?.event.case === 'start' ? running.value.event.event.value.pid : 0;
        assert.ok(pid > 0);
        try {
          const procs = await bothWays(
            envd,
            proto,
            binary,
            '/process.Process/List',
            {},
            encode(binary, ListRequestSchema, {}),
          );
          assert.deepEqual(procs.fast, procs.router);
          assert.ok(procs.raw.body.length > 10, 'the running process is listed');
        } finally {
          await envd.process.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: 9 });
        }
      });

      test('errors: not found, unknown user, bad bodies, bad timeout, unknown process, wrong token', async () => {
        const stat = (path: string) => encode(binary, StatRequestSchema, { path });
        const cases: { name: string; path: string; headers?: Record<string, string>; body: Buffer; status: number }[] =
          [
            { name: 'missing file', path: '/filesystem.Filesystem/Stat', body: stat(join(dir, 'nope')), status: 404 },
            {
              name: 'unknown user',
              path: '/filesystem.Filesystem/Stat',
              headers: userHeader('no-such-user-xyz'),
              body: stat(dir),
              status: 400,
            },
            {
              name: 'bad body',
              path: '/filesystem.Filesystem/Stat',
              body: Buffer.from(binary ? [0xff, 0xff, 0xff] : '{"path": 5'),
              status: 400,
            },
            {
              name: 'bad timeout',
              path: '/filesystem.Filesystem/Stat',
              headers: { 'connect-timeout-ms': '-1' },
              body: stat(dir),
              status: 400,
            },
            {
              name: 'unknown process',
              path: '/process.Process/SendSignal',
              body: encode(binary, SendSignalRequestSchema, {
                process: { selector: { case: 'pid', value: 999_999_999 } },
                signal: 15,
              }),
              status: 404,
            },
          ];
        for (const c of cases) {
          const { fast, router } = await bothWays(envd, proto, binary, c.path, c.headers ?? {}, c.body);
          assert.deepEqual(fast, router, c.name);
          assert.equal(fast.status, c.status, c.name);
          assert.equal(fast.contentType, 'application/json', `${c.name}: errors are JSON`);
        }
        envd.server.state.accessToken = 'unary-token';
        try {
          const wrong = await bothWays(
            envd,
            proto,
            binary,
            '/filesystem.Filesystem/Stat',
            { 'x-access-token': 'nope' },
            stat(dir),
          );
          assert.deepEqual(wrong.fast, wrong.router);
          assert.equal(wrong.fast.status, 401);
          assert.deepEqual(JSON.parse(Buffer.from(wrong.fast.body, 'base64').toString()), {
            code: 'unauthenticated',
            message: 'missing or wrong X-Access-Token',
          });
          // connect-es parses the body before interceptors run: a bad body is reported first.
          const bad = await bothWays(
            envd,
            proto,
            binary,
            '/filesystem.Filesystem/Stat',
            { 'x-access-token': 'nope' },
            Buffer.from(binary ? [0xff, 0xff] : '{'),
          );
          assert.deepEqual(bad.fast, bad.router);
          assert.equal(bad.fast.status, 400);
          const right = await bothWays(
            envd,
            proto,
            binary,
            '/filesystem.Filesystem/Stat',
            { 'x-access-token': 'unary-token' },
            stat(dir),
          );
          assert.deepEqual(right.fast, right.router);
          assert.equal(right.fast.status, 200);
        } finally {
          envd.server.state.accessToken = undefined;
        }
      });
    });
  }
}
