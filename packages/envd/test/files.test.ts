// GET/POST /files end to end over real sockets: multipart (several files) and octet-stream uploads,
// gzip both ways, ownership, metadata headers, downloads with ranges, error statuses, signed URLs.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { getAttributeSync } from '@napi-rs/xattr';
import { fileSignature } from '../src/filesystem/signature.js';
import { type After, createTestUser, tempDir } from './filesystem-fixtures.js';
import { startTestEnvd, type TestEnvd } from './helpers.js';

async function envdFor(t: After): Promise<TestEnvd> {
  const envd = await startTestEnvd({ portForwarding: false });
  t.after(() => envd.close());
  return envd;
}

function filesUrl(envd: TestEnvd, query: Record<string, string>): string {
  return `${envd.baseUrl}/files?${new URLSearchParams(query)}`;
}

interface WriteInfo {
  path: string;
  name: string;
  type: string;
  metadata?: Record<string, string>;
}

describe('POST /files', () => {
  test('multipart with several files writes each at its filename path, creating parents', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const form = new FormData();
    form.append('file', new Blob(['first']), join(dir, 'one.txt'));
    form.append('file', new Blob([new Uint8Array([0, 1, 2, 255])]), join(dir, 'nested', 'deep', 'two.bin'));
    form.append('other', 'a field that is not a file is ignored');
    const res = await fetch(filesUrl(envd, {}), { method: 'POST', body: form });
    assert.equal(res.status, 200, await res.clone().text());
    const body = (await res.json()) as WriteInfo[];
    assert.deepEqual(body, [
      { path: join(dir, 'one.txt'), name: 'one.txt', type: 'file' },
      { path: join(dir, 'nested', 'deep', 'two.bin'), name: 'two.bin', type: 'file' },
    ]);
    assert.equal(readFileSync(join(dir, 'one.txt'), 'utf8'), 'first');
    assert.deepEqual([...readFileSync(join(dir, 'nested', 'deep', 'two.bin'))], [0, 1, 2, 255]);
  });

  test('multipart with ?path= writes there; two files to one path is a 400', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const target = join(dir, 'by-query.txt');
    const form = new FormData();
    form.append('file', new Blob(['q']), 'ignored-name.txt');
    const res = await fetch(filesUrl(envd, { path: target }), { method: 'POST', body: form });
    assert.equal(res.status, 200);
    assert.equal(readFileSync(target, 'utf8'), 'q');
    const twice = new FormData();
    twice.append('file', new Blob(['1']), 'a');
    twice.append('file', new Blob(['2']), 'b');
    const bad = await fetch(filesUrl(envd, { path: target }), { method: 'POST', body: twice });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /multiple files to the same path/);
  });

  test('octet-stream body, gzip Content-Encoding, overwrite, and X-Metadata-* headers as xattrs', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const target = join(dir, 'raw', 'data.bin');
    const payload = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    let res = await fetch(filesUrl(envd, { path: target }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'X-Metadata-Owner-Team': 'infra', 'x-metadata-rev': '2' },
      body: payload,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), [
      { path: target, name: 'data.bin', type: 'file', metadata: { 'owner-team': 'infra', rev: '2' } },
    ]);
    assert.ok(readFileSync(target).equals(payload));
    assert.equal(getAttributeSync(target, 'user.e2b.owner-team')?.toString(), 'infra');

    // Overwrite with gzip-compressed content and new metadata: old keys are dropped.
    res = await fetch(filesUrl(envd, { path: target }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip', 'x-metadata-rev': '3' },
      body: gzipSync(Buffer.from('smaller now')),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as WriteInfo[])[0]?.metadata, { rev: '3' });
    assert.equal(readFileSync(target, 'utf8'), 'smaller now');

    const noPath = await fetch(filesUrl(envd, {}), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
    });
    assert.equal(noPath.status, 400);
    const badType = await fetch(filesUrl(envd, { path: target }), {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'x',
    });
    assert.equal(badType.status, 400);
    const badMeta = await fetch(filesUrl(envd, { path: target }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'x-metadata-k': 'x'.repeat(5000) },
      body: 'x',
    });
    assert.equal(badMeta.status, 400);
    mkdirSync(join(dir, 'adir'));
    const onDir = await fetch(filesUrl(envd, { path: join(dir, 'adir') }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
    });
    assert.equal(onDir.status, 400);
    assert.match(((await onDir.json()) as { message: string }).message, /is a directory/);
  });

  test('uploads as a user: relative paths in its home, files and parents owned by it, 403 outside', async (t) => {
    const envd = await envdFor(t);
    const user = createTestUser(t);
    const res = await fetch(filesUrl(envd, { path: 'docs/notes.txt', username: user.name }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'mine',
    });
    assert.equal(res.status, 200);
    const target = join(user.home, 'docs', 'notes.txt');
    assert.deepEqual(await res.json(), [{ path: target, name: 'notes.txt', type: 'file' }]);
    assert.equal(statSync(target).uid, user.uid);
    assert.equal(statSync(target).gid, user.gid);
    assert.equal(statSync(join(user.home, 'docs')).uid, user.uid);

    // The parents are made as root and given to the user (as E2B's envd does), but the file is
    // still opened as the user: under /root (0700) it may not, so the upload fails and the
    // directories made for it are removed again.
    const denied = await fetch(filesUrl(envd, { path: '/root/wrenn-files-denied/sub/x', username: user.name }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'nope',
    });
    assert.equal(denied.status, 403);
    assert.equal(existsSync('/root/wrenn-files-denied'), false);
    const unknown = await fetch(filesUrl(envd, { path: 'x', username: 'no-such-user-xyz' }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
    });
    assert.equal(unknown.status, 401);
  });
});

describe('POST /files: missing parents', () => {
  test('are made as root and owned by the requesting user, as E2B does; existing ones are left alone', async (t) => {
    const envd = await envdFor(t);
    const user = createTestUser(t);
    // Root's directory (0755): the user could not create anything in it by itself.
    const rootDir = tempDir(t, 'wrenn-parents-');
    mkdirSync(join(rootDir, 'existing'), { mode: 0o755 });
    const target = join(rootDir, 'existing', 'a', 'b', 'notes.txt');
    const res = await fetch(filesUrl(envd, { path: target, username: user.name }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'made',
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(readFileSync(target, 'utf8'), 'made');
    for (const d of [join(rootDir, 'existing', 'a'), join(rootDir, 'existing', 'a', 'b')]) {
      const st = statSync(d);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [user.uid, user.gid, 0o755], d);
    }
    assert.equal(statSync(target).uid, user.uid);
    // What existed before stays root's.
    assert.equal(statSync(join(rootDir, 'existing')).uid, 0);
    assert.equal(statSync(rootDir).uid, 0);

    // Multipart uploads make their parents the same way.
    const form = new FormData();
    form.append('file', new Blob(['one']), join(rootDir, 'm1', 'x.txt'));
    const multi = await fetch(filesUrl(envd, { username: user.name }), { method: 'POST', body: form });
    assert.equal(multi.status, 200, await multi.clone().text());
    assert.equal(statSync(join(rootDir, 'm1')).uid, user.uid);

    // A parent that is a file: 400, nothing made.
    writeFileSync(join(rootDir, 'plain'), 'x');
    const blocked = await fetch(filesUrl(envd, { path: join(rootDir, 'plain', 'c', 'x'), username: user.name }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
    });
    assert.equal(blocked.status, 400, await blocked.clone().text());
  });
});

describe('GET /files', () => {
  test('streams the file with content type, disposition, length, ranges and gzip', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const file = join(dir, 'report.json');
    const content = JSON.stringify({ hello: 'world', n: [1, 2, 3] });
    writeFileSync(file, content);
    // fetch asks for gzip by default (as E2B's envd, gzip is then used): ask for identity here.
    let res = await fetch(filesUrl(envd, { path: file }), { headers: { 'accept-encoding': 'identity' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.headers.get('content-disposition'), 'inline; filename=report.json');
    assert.equal(res.headers.get('content-length'), String(content.length));
    assert.equal(res.headers.get('vary'), 'Accept-Encoding');
    assert.equal(await res.text(), content);

    res = await fetch(filesUrl(envd, { path: file }), { headers: { range: 'bytes=2-6' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 2-6/${content.length}`);
    assert.equal(await res.text(), content.slice(2, 7));

    // fetch would decode gzip itself; read the raw bytes through node:http semantics instead.
    const { request } = await import('node:http');
    const raw = await new Promise<{ enc: string | undefined; body: Buffer }>((resolve, reject) => {
      request(filesUrl(envd, { path: file }), { headers: { 'accept-encoding': 'gzip' } }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ enc: r.headers['content-encoding'], body: Buffer.concat(chunks) }));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(raw.enc, 'gzip');
    assert.equal(gunzipSync(raw.body).toString(), content);

    const notAcceptable = await fetch(filesUrl(envd, { path: file }), {
      headers: { 'accept-encoding': 'br, identity;q=0' },
    });
    assert.equal(notAcceptable.status, 406);

    const spaced = join(dir, 'my file "x".bin');
    writeFileSync(spaced, Buffer.from([0, 1, 2]));
    res = await fetch(filesUrl(envd, { path: spaced }));
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.equal(res.headers.get('content-disposition'), 'inline; filename="my file \\"x\\".bin"');
  });

  test('gzip is used for compressible data; large incompressible files go out as identity', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const { randomBytes } = await import('node:crypto');
    const { request } = await import('node:http');
    const rawGet = (path: string, acceptEncoding: string) =>
      new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        request(filesUrl(envd, { path }), { headers: { 'accept-encoding': acceptEncoding } }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ headers: r.headers, body: Buffer.concat(chunks) }));
        })
          .on('error', reject)
          .end();
      });
    const random = randomBytes(300 * 1024);
    writeFileSync(join(dir, 'random.bin'), random);
    const text = Buffer.from('a line of very compressible text\n'.repeat(10000));
    writeFileSync(join(dir, 'text.log'), text);
    const r1 = await rawGet(join(dir, 'random.bin'), 'gzip, deflate');
    assert.equal(r1.headers['content-encoding'], undefined);
    assert.equal(r1.headers['content-length'], String(random.length));
    assert.ok(r1.body.equals(random));
    const r2 = await rawGet(join(dir, 'text.log'), 'gzip, deflate');
    assert.equal(r2.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(r2.body).equals(text));
    assert.ok(r2.body.length < text.length / 10);
    // A client that refuses identity still gets gzip, compressible or not.
    const r3 = await rawGet(join(dir, 'random.bin'), 'gzip, identity;q=0');
    assert.equal(r3.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(r3.body).equals(random));
  });

  test('404 for a missing file, 400 for a directory, 403 for an unreadable file', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const missing = await fetch(filesUrl(envd, { path: join(dir, 'missing') }));
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { code: 404, message: `path '${join(dir, 'missing')}' does not exist` });
    const isDir = await fetch(filesUrl(envd, { path: dir }));
    assert.equal(isDir.status, 400);
    const user = createTestUser(t);
    writeFileSync(join(dir, 'secret'), 's', { mode: 0o600 });
    const denied = await fetch(filesUrl(envd, { path: join(dir, 'secret'), username: user.name }));
    assert.equal(denied.status, 403);
    writeFileSync(join(user.home, 'own.txt'), 'own');
    const own = await fetch(filesUrl(envd, { path: 'own.txt', username: user.name }));
    assert.equal(await own.text(), 'own');
  });
});

describe('/files over h2c', () => {
  test('upload and download work on an HTTP/2 cleartext connection too', async (t) => {
    const envd = await envdFor(t);
    const dir = tempDir(t);
    const http2 = await import('node:http2');
    const session = http2.connect(envd.baseUrl);
    t.after(() => session.close());
    const call = (headers: Record<string, string>, body?: Buffer) =>
      new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const stream = session.request(headers);
        let status = 0;
        const chunks: Buffer[] = [];
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => resolve({ status, body: Buffer.concat(chunks) }));
        stream.on('error', reject);
        stream.end(body);
      });
    const target = join(dir, 'h2', 'file.bin');
    const payload = Buffer.alloc(2 * 1024 * 1024, 9);
    const q = new URLSearchParams({ path: target });
    const up = await call(
      { ':method': 'POST', ':path': `/files?${q}`, 'content-type': 'application/octet-stream' },
      payload,
    );
    assert.equal(up.status, 200, up.body.toString());
    assert.ok(readFileSync(target).equals(payload));
    const down = await call({ ':method': 'GET', ':path': `/files?${q}`, 'accept-encoding': 'identity' });
    assert.equal(down.status, 200);
    assert.ok(down.body.equals(payload));
    const missing = await call({
      ':method': 'GET',
      ':path': `/files?${new URLSearchParams({ path: join(dir, 'nope') })}`,
    });
    assert.equal(missing.status, 404);
  });
});

describe('/files with an access token', () => {
  test('needs X-Access-Token or a valid, unexpired signature for the same path, operation and user', async (t) => {
    const envd = await envdFor(t);
    const token = 'secret-token-123';
    envd.server.state.accessToken = token;
    const dir = tempDir(t);
    const file = join(dir, 'f.txt');
    writeFileSync(file, 'signed');

    assert.equal((await fetch(filesUrl(envd, { path: file }))).status, 401);
    assert.equal((await fetch(filesUrl(envd, { path: file }), { headers: { 'x-access-token': 'wrong' } })).status, 401);
    assert.equal((await fetch(filesUrl(envd, { path: file }), { headers: { 'x-access-token': token } })).status, 200);

    // The e2b SDK's scheme, computed independently here: v1_ + unpadded base64(sha256(...)).
    const sig = (p: string, op: string, user: string, exp?: number) =>
      `v1_${createHash('sha256')
        .update(exp === undefined ? `${p}:${op}:${user}:${token}` : `${p}:${op}:${user}:${token}:${exp}`)
        .digest('base64')
        .replace(/=+$/, '')}`;
    assert.equal(fileSignature(file, 'read', '', token), sig(file, 'read', ''));

    let res = await fetch(filesUrl(envd, { path: file, signature: sig(file, 'read', '') }));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'signed');
    res = await fetch(filesUrl(envd, { path: file, username: 'root', signature: sig(file, 'read', 'root') }));
    assert.equal(res.status, 200);
    assert.equal(
      (await fetch(filesUrl(envd, { path: file, signature: sig(file, 'write', '') }))).status,
      401,
      'a write signature does not read',
    );
    assert.equal(
      (await fetch(filesUrl(envd, { path: file, username: 'root', signature: sig(file, 'read', '') }))).status,
      401,
      'the user is signed',
    );
    const future = Math.floor(Date.now() / 1000) + 60;
    res = await fetch(
      filesUrl(envd, { path: file, signature: sig(file, 'read', '', future), signature_expiration: String(future) }),
    );
    assert.equal(res.status, 200);
    const past = Math.floor(Date.now() / 1000) - 60;
    res = await fetch(
      filesUrl(envd, { path: file, signature: sig(file, 'read', '', past), signature_expiration: String(past) }),
    );
    assert.equal(res.status, 401);
    assert.match(((await res.json()) as { message: string }).message, /expired/);

    const upTarget = join(dir, 'up.txt');
    res = await fetch(filesUrl(envd, { path: upTarget, signature: sig(upTarget, 'write', '') }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'uploaded with a signature',
    });
    assert.equal(res.status, 200);
    assert.equal(readFileSync(upTarget, 'utf8'), 'uploaded with a signature');
    res = await fetch(filesUrl(envd, { path: upTarget }), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
    });
    assert.equal(res.status, 401);
    assert.equal(readFileSync(upTarget, 'utf8'), 'uploaded with a signature');
  });
});
