// The official e2b SDK (debug mode: it talks to http://localhost:49983 without an API) against a
// real envd: files.write/read in every format, list, makeDir, rename, remove, exists, getInfo,
// watchDir, users, metadata, and upload/download URLs (plain and signed).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENVD_PORT, ENVD_VERSION } from '../src/version.js';
import { createTestUser, eventually, tempDir } from './filesystem-fixtures.js';
import { startTestEnvd, type TestEnvd } from './helpers.js';

process.env.E2B_DEBUG = 'true';
process.env.E2B_API_KEY ??= 'e2b_debug_mode_needs_no_real_key';
const { Sandbox, FileType, FilesystemEventType, FileNotFoundError, getSignature } = await import('e2b');
type SandboxT = InstanceType<typeof Sandbox>;
type FsEvent = Parameters<Parameters<SandboxT['files']['watchDir']>[1]>[0];

/** A Sandbox object for envd on localhost the way the SDK builds one after create/connect, with our version and token. */
function sandboxWith(opts: { envdAccessToken?: string }): SandboxT {
  const Ctor = Sandbox as unknown as new (o: Record<string, unknown>) => SandboxT;
  return new Ctor({ sandboxId: 'debug_sandbox_id', envdVersion: ENVD_VERSION, debug: true, ...opts });
}

describe('e2b SDK files against envd', () => {
  let envd: TestEnvd;
  let sbx: SandboxT;
  const cleanups: (() => unknown)[] = [];
  const t = { after: (fn: () => unknown) => cleanups.push(fn) };

  before(async () => {
    envd = await startTestEnvd({ port: ENVD_PORT, portForwarding: false });
    sbx = await Sandbox.create();
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
    await envd?.close();
  });

  test('write and read text, bytes, Blob and streams', async () => {
    const dir = tempDir(t);
    const info = await sbx.files.write(join(dir, 'text.txt'), 'hello from the SDK');
    assert.deepEqual(
      { ...info, metadata: info.metadata },
      { path: join(dir, 'text.txt'), name: 'text.txt', type: FileType.FILE, metadata: undefined },
    );
    assert.equal(await sbx.files.read(join(dir, 'text.txt')), 'hello from the SDK');

    const bytes = new Uint8Array(256).map((_, i) => i);
    await sbx.files.write(join(dir, 'bytes.bin'), bytes.buffer);
    assert.deepEqual(await sbx.files.read(join(dir, 'bytes.bin'), { format: 'bytes' }), bytes);
    assert.deepEqual([...readFileSync(join(dir, 'bytes.bin'))], [...bytes]);

    await sbx.files.write(join(dir, 'blob.txt'), new Blob(['blob content']));
    const blob = await sbx.files.read(join(dir, 'blob.txt'), { format: 'blob' });
    assert.equal(await blob.text(), 'blob content');

    // A ReadableStream goes up as application/octet-stream without buffering.
    const big = Buffer.alloc(5 * 1024 * 1024 + 3, 'abc');
    await sbx.files.write(join(dir, 'nested', 'stream.bin'), new Blob([big]).stream());
    assert.ok(readFileSync(join(dir, 'nested', 'stream.bin')).equals(big));
    const stream = await sbx.files.read(join(dir, 'nested', 'stream.bin'), { format: 'stream' });
    assert.ok(Buffer.from(await new Response(stream).arrayBuffer()).equals(big));

    await sbx.files.write(join(dir, 'gz.txt'), 'compressed both ways', { gzip: true });
    assert.equal(await sbx.files.read(join(dir, 'gz.txt'), { gzip: true }), 'compressed both ways');

    await assert.rejects(sbx.files.read(join(dir, 'missing.txt')), FileNotFoundError);
  });

  test('writeFiles uploads many files in one request', async () => {
    const dir = tempDir(t);
    const files = Array.from({ length: 25 }, (_, i) => ({
      path: join(dir, `d${i % 3}`, `f${i}.txt`),
      data: `content ${i}`,
    }));
    const infos = await sbx.files.write(files);
    assert.equal(infos.length, 25);
    assert.deepEqual(
      infos.map((i) => i.path),
      files.map((f) => f.path),
    );
    for (const f of files) assert.equal(readFileSync(f.path, 'utf8'), f.data);
  });

  test('metadata travels as X-Metadata-* and comes back from getInfo and list', async () => {
    const dir = tempDir(t);
    const info = await sbx.files.write(join(dir, 'm.txt'), 'x', { metadata: { Project: 'wrenn', stage: 'test' } });
    assert.deepEqual(info.metadata, { project: 'wrenn', stage: 'test' });
    assert.deepEqual((await sbx.files.getInfo(join(dir, 'm.txt'))).metadata, { project: 'wrenn', stage: 'test' });
    const listed = await sbx.files.list(dir);
    assert.deepEqual(listed[0]?.metadata, { project: 'wrenn', stage: 'test' });
  });

  test('list, makeDir, rename, remove, exists and getInfo', async () => {
    const dir = tempDir(t);
    assert.equal(await sbx.files.makeDir(join(dir, 'a', 'b')), true);
    assert.equal(await sbx.files.makeDir(join(dir, 'a', 'b')), false, 'makeDir says false when it exists');
    writeFileSync(join(dir, 'a', 'b', 'leaf.txt'), 'leaf');
    writeFileSync(join(dir, 'top.txt'), 'top');

    const one = await sbx.files.list(dir);
    assert.deepEqual(
      one.map((e) => [e.name, e.type]),
      [
        ['a', FileType.DIR],
        ['top.txt', FileType.FILE],
      ],
    );
    const three = await sbx.files.list(dir, { depth: 3 });
    assert.deepEqual(
      three.map((e) => e.path),
      [join(dir, 'a'), join(dir, 'a', 'b'), join(dir, 'a', 'b', 'leaf.txt'), join(dir, 'top.txt')],
    );

    const info = await sbx.files.getInfo(join(dir, 'top.txt'));
    assert.equal(info.type, FileType.FILE);
    assert.equal(info.size, 3);
    assert.equal(info.owner, 'root');
    assert.equal(info.permissions, '-rw-r--r--');
    assert.ok(
      info.modifiedTime instanceof Date &&
        Math.abs(info.modifiedTime.getTime() - statSync(join(dir, 'top.txt')).mtimeMs) < 2,
    );

    const moved = await sbx.files.rename(join(dir, 'top.txt'), join(dir, 'moved', 'top2.txt'));
    assert.equal(moved.path, join(dir, 'moved', 'top2.txt'));
    assert.equal(await sbx.files.exists(join(dir, 'top.txt')), false);
    assert.equal(await sbx.files.exists(join(dir, 'moved', 'top2.txt')), true);
    await sbx.files.remove(join(dir, 'a'));
    assert.equal(existsSync(join(dir, 'a')), false);
    assert.equal(await sbx.files.exists(join(dir, 'a')), false);
    await assert.rejects(sbx.files.getInfo(join(dir, 'a')), FileNotFoundError);
  });

  test('watchDir delivers create, write, rename and remove events, recursively with entries', async () => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'sub'));
    const events: FsEvent[] = [];
    const handle = await sbx.files.watchDir(dir, (e) => void events.push(e), {
      recursive: true,
      includeEntry: true,
      timeoutMs: 0,
    });
    try {
      const has = (type: string, name: string) => events.some((e) => e.type === type && e.name === name);
      await sbx.files.write(join(dir, 'w.txt'), 'watch me');
      await sbx.files.write(join(dir, 'sub', 'inner.txt'), 'deep');
      await sbx.files.rename(join(dir, 'w.txt'), join(dir, 'w2.txt'));
      await sbx.files.remove(join(dir, 'w2.txt'));
      await eventually(() => {
        assert.ok(has(FilesystemEventType.CREATE, 'w.txt'));
        assert.ok(has(FilesystemEventType.WRITE, 'w.txt'));
        assert.ok(has(FilesystemEventType.CREATE, 'sub/inner.txt'));
        assert.ok(has(FilesystemEventType.RENAME, 'w.txt'));
        assert.ok(has(FilesystemEventType.CREATE, 'w2.txt'));
        assert.ok(has(FilesystemEventType.REMOVE, 'w2.txt'));
      });
      const created = events.find((e) => e.type === FilesystemEventType.CREATE && e.name === 'sub/inner.txt');
      assert.equal(created?.entry?.path, join(dir, 'sub', 'inner.txt'));
    } finally {
      await handle.stop();
    }
  });

  test('user option: relative paths in that user home, files owned by it', async () => {
    const user = createTestUser(t);
    const info = await sbx.files.write('notes/todo.txt', 'as a user', { user: user.name });
    assert.equal(info.path, join(user.home, 'notes', 'todo.txt'));
    assert.equal(statSync(info.path).uid, user.uid);
    assert.equal(await sbx.files.read('notes/todo.txt', { user: user.name }), 'as a user');
    const entries = await sbx.files.list('notes', { user: user.name });
    assert.equal(entries[0]?.owner, user.name);
    assert.equal(await sbx.files.makeDir('~/made', { user: user.name }), true);
    assert.equal(statSync(join(user.home, 'made')).uid, user.uid);
  });

  test('uploadUrl and downloadUrl work with plain fetch', async () => {
    const dir = tempDir(t);
    const target = join(dir, 'via-url.txt');
    const form = new FormData();
    form.append('file', new Blob(['uploaded through a URL']), 'via-url.txt');
    const up = await fetch(await sbx.uploadUrl(target), { method: 'POST', body: form });
    assert.equal(up.status, 200);
    const down = await fetch(await sbx.downloadUrl(target));
    assert.equal(await down.text(), 'uploaded through a URL');
  });

  test('with an access token: the SDK sends it, and signed URLs work without it', async () => {
    const token = `sdk-token-${Date.now()}`;
    envd.server.state.accessToken = token;
    try {
      const dir = tempDir(t);
      const secured = sandboxWith({ envdAccessToken: token });
      await secured.files.write(join(dir, 's.txt'), 'secured');
      assert.equal(await secured.files.read(join(dir, 's.txt')), 'secured');
      await assert.rejects(sbx.files.read(join(dir, 's.txt')), 'a client without the token is refused');

      const target = join(dir, 'signed.txt');
      const form = new FormData();
      form.append('file', new Blob(['signed upload']), 'signed.txt');
      const upUrl = await secured.uploadUrl(target, { useSignatureExpiration: 60 });
      assert.match(upUrl, /signature=v1_/);
      assert.equal((await fetch(upUrl, { method: 'POST', body: form })).status, 200);
      const downUrl = await secured.downloadUrl(target);
      assert.equal(await (await fetch(downUrl)).text(), 'signed upload');
      const forged = new URL(downUrl);
      forged.searchParams.set('path', join(dir, 's.txt'));
      assert.equal((await fetch(forged)).status, 401, 'a signature is bound to its path');
      const sig = await getSignature({ path: target, operation: 'read', user: undefined, envdAccessToken: token });
      const manual = new URL(`${envd.baseUrl}/files`);
      manual.searchParams.set('path', target);
      manual.searchParams.set('signature', sig.signature);
      assert.equal((await fetch(manual)).status, 200);
    } finally {
      envd.server.state.accessToken = undefined;
    }
  });
});
