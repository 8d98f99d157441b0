// Signed file URLs through the official e2b SDK against `wrenn up`, pointed at it the usual way
// (one E2B_SANDBOX_URL for every sandbox): downloadUrl/uploadUrl of a secure sandbox name no
// capsule, so the proxy finds the capsule whose envd access token made the signature
// (proxy/signed-files.ts) and envd checks it again. Also: a "file" form part without a filename
// is the file (E2B's envd), and hostile uses of signatures: tampered, another capsule's, read used
// for write, a killed capsule's.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import { type LiveSystem, startLive } from './e2b-live.js';

describe('e2b SDK signed file URLs against wrenn up', () => {
  let sys: LiveSystem;
  let a: Sandbox;
  let b: Sandbox;
  const created: string[] = [];
  const make = async () => {
    const s = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000, secure: true });
    created.push(s.sandboxId);
    return s;
  };
  const text = async (res: Response) => ({ status: res.status, body: await res.text() });

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 0 });
    a = await make();
    b = await make();
    await a.files.write('/home/user/hello.txt', 'hello from a');
    await b.files.write('/home/user/hello.txt', 'hello from b');
  });
  after(async () => {
    for (const id of created) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
    await sys?.close();
  });

  it('downloads with a signed URL that names no sandbox, with and without an expiration', async () => {
    const plain = await a.downloadUrl('hello.txt');
    assert.ok(plain.startsWith(`${sys.url}/files?`), `the URL is on the one sandbox URL: ${plain}`);
    assert.deepEqual(await text(await fetch(plain)), { status: 200, body: 'hello from a' });
    const timed = await a.downloadUrl('hello.txt', { useSignatureExpiration: 60 });
    assert.deepEqual(await text(await fetch(timed)), { status: 200, body: 'hello from a' });
    // The same path signed by b's token reaches b.
    assert.deepEqual(await text(await fetch(await b.downloadUrl('hello.txt'))), { status: 200, body: 'hello from b' });
  });

  it('refuses an expired signature in E2B shape (401 from envd)', async () => {
    const expired = await a.downloadUrl('hello.txt', { useSignatureExpiration: -60 });
    const r = await text(await fetch(expired));
    assert.equal(r.status, 401);
    assert.deepEqual(JSON.parse(r.body), { code: 401, message: 'signature is already expired' });
  });

  it('uploads with a signed URL: a "file" part without a filename, and a file part', async () => {
    const url = await a.uploadUrl('up.txt');
    const form = new FormData();
    form.append('file', 'typed content');
    const r = await text(await fetch(url, { method: 'POST', body: form }));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), [{ name: 'up.txt', path: '/home/user/up.txt', type: 'file' }]);
    assert.equal(await a.files.read('/home/user/up.txt'), 'typed content');

    const rootUrl = await a.uploadUrl('blob.bin', { user: 'root' });
    const blobForm = new FormData();
    blobForm.append('file', new Blob([new Uint8Array([0, 1, 2, 255])]), 'ignored-name');
    const r2 = await text(await fetch(rootUrl, { method: 'POST', body: blobForm }));
    assert.equal(r2.status, 200, r2.body);
    assert.deepEqual(JSON.parse(r2.body), [{ name: 'blob.bin', path: '/root/blob.bin', type: 'file' }]);
    const back = await a.files.read('/root/blob.bin', { format: 'bytes', user: 'root' });
    assert.deepEqual([...back], [0, 1, 2, 255]);
    assert.equal(await b.files.exists('/home/user/up.txt'), false, 'the neighbour got nothing');
  });

  it('hostile: a tampered path, a read signature used to write, or a forged one reach no sandbox', async () => {
    const good = new URL(await a.downloadUrl('hello.txt'));
    const tampered = new URL(good);
    tampered.searchParams.set('path', '/etc/shadow');
    const t = await text(await fetch(tampered));
    assert.equal(t.status, 401, t.body);
    assert.equal(JSON.parse(t.body).code, 401);
    assert.doesNotMatch(t.body, /root:/);

    const form = new FormData();
    form.append('file', 'overwritten');
    const w = await text(await fetch(good, { method: 'POST', body: form }));
    assert.equal(w.status, 401, w.body);
    assert.equal(await a.files.read('/home/user/hello.txt'), 'hello from a');

    const forged = new URL(good);
    forged.searchParams.set('signature', 'v1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    assert.equal((await fetch(forged)).status, 401);
    const malformed = new URL(good);
    malformed.searchParams.set('signature_expiration', 'soon');
    assert.equal((await fetch(malformed)).status, 401);
    // The neighbour keeps working.
    assert.deepEqual(await text(await fetch(await b.downloadUrl('hello.txt'))), { status: 200, body: 'hello from b' });
  });

  it('a killed sandbox signature reaches nothing', async () => {
    const c = await make();
    await c.files.write('/home/user/gone.txt', 'gone');
    const url = await c.downloadUrl('gone.txt');
    assert.equal((await fetch(url)).status, 200);
    await c.kill();
    const r = await text(await fetch(url));
    assert.equal(r.status, 401, r.body);
    assert.deepEqual(JSON.parse(r.body), { code: 401, message: 'invalid signature: it matches no sandbox' });
  });
});
