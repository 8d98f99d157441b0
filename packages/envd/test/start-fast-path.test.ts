// The Start fast path (src/rpc-fast) against connect-es's router, byte for byte where the output is
// deterministic: the same request goes to `/process.Process/Start` (fast path) and to
// `/process.Process/Start?via=router` (a query string hands it to the router), over HTTP/1.1 and h2c,
// as JSON and binary; results, errors, timeouts, compression, and a client that goes away.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { create, fromBinary, fromJson, type JsonValue, toBinary, toJson } from '@bufbuild/protobuf';
import { StartRequestSchema, type StartResponse, StartResponseSchema } from '@wrenn/protocol/gen/envd/process_pb';
import { startFastPathStats } from '../src/rpc-fast/start-fast-path.js';
import { startTestEnvd, type TestEnvd, userHeader } from './helpers.js';

type Proto = 'h1' | 'h2';
type StartInit = MessageInitShape<typeof StartRequestSchema>;

interface Envelope {
  flags: number;
  data: Buffer;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  envelopes: Envelope[];
}

const FAST = '/process.Process/Start';
const ROUTER = '/process.Process/Start?via=router';

function envelope(flags: number, data: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.byteLength, 1);
  return Buffer.concat([head, data]);
}

function startBody(binary: boolean, init: StartInit): Buffer {
  const msg = create(StartRequestSchema, init);
  const data = binary
    ? toBinary(StartRequestSchema, msg)
    : Buffer.from(JSON.stringify(toJson(StartRequestSchema, msg)));
  return envelope(0, data);
}

function splitEnvelopes(body: Buffer): Envelope[] {
  const out: Envelope[] = [];
  for (let at = 0; at < body.length; ) {
    const len = body.readUInt32BE(at + 1);
    out.push({ flags: body[at] as number, data: body.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return out;
}

/** One raw Connect call; `onFirstBytes` may end it early (returns true to stop reading). */
function call(
  envd: TestEnvd,
  proto: Proto,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  onData?: (received: Buffer, stop: () => void) => void,
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
        const finish = () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            envelopes: splitEnvelopes(Buffer.concat(chunks)),
          });
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          onData?.(Buffer.concat(chunks), () => {
            req.destroy();
            finish();
          });
        });
        res.on('end', finish);
        res.on('error', () => {});
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
    const finish = () => {
      const { ':status': status, ...rest } = head;
      session.close();
      resolve({ status: Number(status), headers: rest, envelopes: splitEnvelopes(Buffer.concat(chunks)) });
    };
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: Buffer) => {
      chunks.push(c);
      onData?.(Buffer.concat(chunks), () => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        session.destroy();
        finish();
      });
    });
    stream.on('end', finish);
    stream.on('error', () => {});
    stream.end(body);
  });
}

function contentType(binary: boolean): Record<string, string> {
  return {
    'content-type': binary ? 'application/connect+proto' : 'application/connect+json',
    'connect-protocol-version': '1',
  };
}

function decode(binary: boolean, env: Envelope, compressed: boolean): StartResponse {
  const data = compressed && env.flags & 1 ? gunzipSync(env.data) : env.data;
  return binary
    ? fromBinary(StartResponseSchema, data)
    : fromJson(StartResponseSchema, JSON.parse(data.toString()) as JsonValue);
}

/** What a reply says, independent of pids and of how output was split into data events. */
function summary(reply: Reply, binary: boolean) {
  const compressed = reply.headers['connect-content-encoding'] === 'gzip';
  const messages = reply.envelopes.filter((e) => (e.flags & 2) === 0).map((e) => decode(binary, e, compressed));
  const out = { stdout: '', stderr: '', kinds: [] as string[], end: undefined as unknown };
  for (const m of messages) {
    const e = m.event?.event;
    if (!e?.case) continue;
    if (out.kinds.at(-1) !== e.case) out.kinds.push(e.case);
    if (e.case === 'data' && (e.value.output.case === 'stdout' || e.value.output.case === 'stderr'))
      out[e.value.output.case] += Buffer.from(e.value.output.value).toString();
    if (e.case === 'end') out.end = { ...e.value, $typeName: undefined };
  }
  const last = reply.envelopes.at(-1);
  return {
    status: reply.status,
    contentType: reply.headers['content-type'],
    encoding: reply.headers['connect-content-encoding'],
    ...out,
    endStream: last && last.flags & 2 ? JSON.parse(last.data.toString()) : 'missing',
  };
}

async function bothWays(envd: TestEnvd, proto: Proto, binary: boolean, headers: Record<string, string>, body: Buffer) {
  const before = startFastPathStats.calls;
  const fast = await call(envd, proto, FAST, { ...contentType(binary), ...headers }, body);
  assert.equal(startFastPathStats.calls, before + 1, 'the plain path is served by the fast path');
  const router = await call(envd, proto, ROUTER, { ...contentType(binary), ...headers }, body);
  assert.equal(startFastPathStats.calls, before + 1, 'a query string goes to the router');
  return { fast: summary(fast, binary), router: summary(router, binary), rawFast: fast, rawRouter: router };
}

const sh = (script: string): StartInit => ({ process: { cmd: '/bin/sh', args: ['-c', script] } });

/** Bytes a process has written so far (/proc/<pid>/io wchar), or undefined once it is gone. */
function bytesWritten(pid: number): number | undefined {
  try {
    return Number(/wchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

/** A Start whose response the client does not read until `resume` is called. */
function pausedCall(envd: TestEnvd, proto: Proto, body: Buffer) {
  const url = new URL(envd.baseUrl);
  const chunks: Buffer[] = [];
  let resume = () => {};
  const done = new Promise<Buffer>((resolve, reject) => {
    const headers = { ...contentType(true), 'content-length': String(body.length) };
    if (proto === 'h1') {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: FAST,
        method: 'POST',
        headers,
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.pause();
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        resume = () => res.resume();
      });
      req.end(body);
      return;
    }
    const session = http2.connect(url.origin);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': FAST, ...headers });
    stream.pause();
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve(Buffer.concat(chunks));
    });
    stream.on('error', reject);
    resume = () => stream.resume();
    stream.end(body);
  });
  return { done, resume: () => resume() };
}

for (const proto of ['h1', 'h2'] as const) {
  describe(`Start fast path: a client that does not read holds the process back (${proto === 'h1' ? 'HTTP/1.1' : 'h2c'})`, () => {
    let envd: TestEnvd;
    before(async () => {
      envd = await startTestEnvd();
    });
    after(async () => {
      await envd.close();
    });

    test('the writer stalls while alive, then everything arrives once the client reads', async () => {
      const total = 48 * 1024 * 1024;
      const tag = `fast-backpressure-${proto}`;
      const call = pausedCall(
        envd,
        proto,
        startBody(true, { process: { cmd: '/usr/bin/head', args: ['-c', String(total), '/dev/zero'] }, tag }),
      );
      let pid = 0;
      try {
        for (let i = 0; i < 100 && !pid; i++) {
          pid = (await envd.process.list({})).processes.find((p) => p.tag === tag)?.pid ?? 0;
          if (!pid) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(pid > 0, 'the process started');
        // Without back-pressure the writer would run to the end and exit; with it, it stops
        // making progress part way while still alive.
        let last = -1;
        let stalledAt: number | undefined;
        for (let i = 0; i < 100 && stalledAt === undefined; i++) {
          await new Promise((r) => setTimeout(r, 300));
          const now = bytesWritten(pid);
          assert.ok(now !== undefined, 'the writer ran to the end although nobody read its output');
          if (now === last) stalledAt = now;
          last = now;
        }
        assert.ok(
          stalledAt !== undefined && stalledAt < total,
          `the writer stalls part way (at ${stalledAt} of ${total} bytes)`,
        );
        call.resume();
        const envelopes = splitEnvelopes(await call.done);
        let received = 0;
        let end: unknown;
        for (const e of envelopes.filter((x) => x.flags === 0)) {
          const ev = decode(true, e, false).event?.event;
          if (ev?.case === 'data' && ev.value.output.case === 'stdout') received += ev.value.output.value.byteLength;
          if (ev?.case === 'end') end = ev.value.exitCode;
        }
        assert.equal(received, total, 'all output arrives');
        assert.equal(end, 0);
        assert.deepEqual(JSON.parse((envelopes.at(-1) as Envelope).data.toString()), {});
      } finally {
        if (pid && bytesWritten(pid) !== undefined) process.kill(pid, 'SIGKILL');
      }
    });
  });

  for (const binary of [false, true]) {
    describe(`Start fast path = router (${binary ? 'binary' : 'JSON'} over ${proto === 'h1' ? 'HTTP/1.1' : 'h2c'})`, () => {
      let envd: TestEnvd;
      before(async () => {
        envd = await startTestEnvd();
      });
      after(async () => {
        envd.server.state.accessToken = undefined;
        await envd.close();
      });

      test('output, exit code and end of stream', async () => {
        const { fast, router } = await bothWays(
          envd,
          proto,
          binary,
          {},
          startBody(binary, sh('echo out; echo err >&2; exit 3')),
        );
        assert.deepEqual(fast, router);
        assert.equal(fast.status, 200);
        assert.equal(fast.stdout, 'out\n');
        assert.equal(fast.stderr, 'err\n');
        assert.deepEqual(fast.kinds.at(0), 'start');
        assert.deepEqual(fast.kinds.at(-1), 'end');
        assert.deepEqual(fast.endStream, {});
      });

      test('compressed output when the client accepts gzip (large events only)', async () => {
        const body = startBody(binary, sh("head -c 5000 /dev/zero | tr '\\0' a; echo"));
        const { fast, router, rawFast } = await bothWays(
          envd,
          proto,
          binary,
          { 'connect-accept-encoding': 'gzip' },
          body,
        );
        assert.deepEqual(fast, router);
        assert.equal(fast.encoding, 'gzip');
        assert.equal(fast.stdout, `${'a'.repeat(5000)}\n`);
        assert.ok(
          rawFast.envelopes.some((e) => e.flags === 1),
          'the large data event is compressed',
        );
        assert.ok(
          rawFast.envelopes.some((e) => e.flags === 0),
          'small events are not',
        );
      });

      test('errors: unknown user, missing command, bad timeout, unknown encoding, bad bodies', async () => {
        const cases: { name: string; headers?: Record<string, string>; body: Buffer; code: string }[] = [
          {
            name: 'unknown user',
            headers: userHeader('no-such-user-xyz'),
            body: startBody(binary, sh('true')),
            code: 'invalid_argument',
          },
          { name: 'missing command', body: startBody(binary, { process: { cmd: '/no/such/command' } }), code: '' },
          {
            name: 'bad cwd',
            body: startBody(binary, { process: { cmd: '/bin/true', cwd: '/no/such/dir' } }),
            code: '',
          },
          {
            name: 'bad timeout',
            headers: { 'connect-timeout-ms': 'soon' },
            body: startBody(binary, sh('true')),
            code: 'invalid_argument',
          },
          {
            name: 'unknown encoding',
            headers: { 'connect-content-encoding': 'zstd' },
            body: startBody(binary, sh('true')),
            code: 'unimplemented',
          },
          { name: 'empty body', body: Buffer.alloc(0), code: 'unimplemented' },
          {
            name: 'two messages',
            body: Buffer.concat([startBody(binary, sh('true')), startBody(binary, sh('true'))]),
            code: 'unimplemented',
          },
          { name: 'truncated envelope', body: startBody(binary, sh('true')).subarray(0, 8), code: '' },
          {
            name: 'not a message',
            body: envelope(0, Buffer.from(binary ? [0xff, 0xff, 0xff] : '{"process": 5')),
            code: '',
          },
        ];
        for (const c of cases) {
          const { fast, router } = await bothWays(envd, proto, binary, c.headers ?? {}, c.body);
          assert.deepEqual(fast, router, c.name);
          assert.equal(fast.status, 200, c.name);
          const err = (fast.endStream as { error?: { code: string; message: string } }).error;
          assert.ok(err, `${c.name}: the end of stream carries an error`);
          if (c.code) assert.equal(err.code, c.code, c.name);
          assert.ok(err.message.length > 0, c.name);
        }
      });

      test('access token: missing or wrong is unauthenticated (before the body is looked at), right one runs', async () => {
        envd.server.state.accessToken = 'secret-token';
        try {
          for (const [headers, body] of [
            [{}, startBody(binary, sh('true'))],
            [{ 'x-access-token': 'wrong' }, startBody(binary, sh('true'))],
            [{ 'x-access-token': 'wrong' }, Buffer.from('garbage')],
          ] as const) {
            const { fast, router } = await bothWays(envd, proto, binary, headers, body);
            assert.deepEqual(fast, router);
            assert.deepEqual(fast.endStream, {
              error: { code: 'unauthenticated', message: 'missing or wrong X-Access-Token' },
            });
          }
          const { fast, router } = await bothWays(
            envd,
            proto,
            binary,
            { 'x-access-token': 'secret-token' },
            startBody(binary, sh('echo ok')),
          );
          assert.deepEqual(fast, router);
          assert.equal(fast.stdout, 'ok\n');
        } finally {
          envd.server.state.accessToken = undefined;
        }
      });

      test('connect-timeout-ms: the stream ends with deadline_exceeded and the process is killed', async () => {
        const { fast, router } = await bothWays(
          envd,
          proto,
          binary,
          { 'connect-timeout-ms': '400' },
          startBody(binary, sh('echo up; exec sleep 30')),
        );
        assert.deepEqual(fast.endStream, router.endStream);
        assert.equal((fast.endStream as { error?: { code: string } }).error?.code, 'deadline_exceeded');
        assert.equal(fast.stdout, 'up\n');
        assert.equal(router.stdout, 'up\n');
        // The kill and the end of the stream happen together: the exits are reaped a moment later.
        let left = -1;
        for (let i = 0; i < 50 && left !== 0; i++) {
          if (i > 0) await new Promise((r) => setTimeout(r, 50));
          left = (await envd.process.list({})).processes.filter((p) =>
            p.config?.args.includes('echo up; exec sleep 30'),
          ).length;
        }
        assert.equal(left, 0, 'timed-out processes are killed');
      });

      test('a client going away leaves the process running; envd serves the next call', async () => {
        const tag = `fast-disconnect-${proto}-${binary}`;
        const body = startBody(binary, { process: { cmd: '/bin/sleep', args: ['30'] }, tag });
        let pid = 0;
        try {
          await call(envd, proto, FAST, contentType(binary), body, (received, stop) => {
            const first = splitEnvelopes(received)[0];
            if (!first) return;
            const e = decode(binary, first, false).event?.event;
            if (e?.case === 'start') pid = e.value.pid;
            stop();
          });
          assert.ok(pid > 0, 'the start event arrived');
          await new Promise((r) => setTimeout(r, 100));
          const listed = (await envd.process.list({})).processes.find((p) => p.tag === tag);
          assert.equal(listed?.pid, pid, 'the process still runs after the client left');
          process.kill(pid, 0); // throws if it is gone
          const { fast } = await bothWays(envd, proto, binary, {}, startBody(binary, sh('echo next')));
          assert.equal(fast.stdout, 'next\n');
        } finally {
          if (pid)
            await envd.process
              .sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: 9 })
              .catch(() => {});
        }
      });
    });
  }
}
