// Hostile probes for E2B's template build API (api/e2b/template-uploads.ts, templates/file-sets.ts):
// uploads whose tar names escape ('..', absolute), devices and hard links, an oversized upload, a
// reused or foreign upload token, another team's file set used in a COPY, and a file set whose
// symlink points out of the unpack directory (to /etc) with a file written "through" it, unpacked
// as root in a real build capsule: the host's /etc is untouched, the host's file-set store (the
// database file) is not visible from the build, and a neighbour sandbox keeps working. Run
// against `wrenn up` with the e2b SDK.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Sandbox } from 'e2b';
import { createApiKey, e2bKeyOf } from '../../src/auth/api-keys.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { type LiveSystem, SHARED_IMAGES, startLive } from '../e2b-live.js';
import { putAnnouncing, type TarEntry, tarOf } from '../uploads.js';

const SLOT = 15;
const MARK = `wrenn-e2b-tpl-probe-${process.pid}`;
let sys: LiveSystem;
let keyB: string;
let neighbour: Sandbox | undefined;
const ctxDir = mkdtempSync(join(tmpdir(), 'wrenn-e2b-tpl-sec-'));

before(async () => {
  sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES });
  const db = sys.cp.ctx.database.db;
  const team = await createTeam(db, { name: 'tpl-probe-b' });
  keyB = e2bKeyOf((await createApiKey(db, { teamId: team.id, name: 'tpl-probe-b' })).key);
  neighbour = await Sandbox.create('minimal', { ...sys.sdk(keyB), timeoutMs: 600_000 });
});
after(async () => {
  await neighbour?.kill().catch(() => undefined);
  rmSync(ctxDir, { recursive: true, force: true });
  // Closing the live system removes the templates the builds made from the shared image cache.
  await sys?.close();
});

/** A gzipped tar, as the SDK uploads a file set. */
const tgzOf = async (entries: TarEntry[]) => gzipSync(await tarOf(entries));

const api = async (key: string, method: string, path: string, body?: unknown) => {
  const res = await fetch(`${sys.url}${path}`, {
    method,
    headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  // biome-ignore lint/suspicious/noExplicitAny: JSON of several shapes
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

const linkFor = async (key: string, hash: string) => {
  const r = await api(key, 'GET', `/templates/probe/files/${hash}`);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as { present: boolean; url: string };
};

const put = async (url: string, data: Buffer) => {
  const res = await fetch(url, { method: 'PUT', body: data });
  return { status: res.status, body: (await res.json().catch(() => null)) as { code: number; message: string } | null };
};

const hashOf = (n: number) => n.toString(16).padStart(64, '0');

test('hostile uploads are refused before anything keeps them', async () => {
  const keyA = sys.sdk().apiKey;
  const cases: [Parameters<typeof tarOf>[0], RegExp][] = [
    [[{ name: '../../../../etc/cron.d/x', body: 'x' }], /contains '\.\.'/],
    [[{ name: '/etc/passwd', body: 'x' }], /is absolute/],
    [[{ name: 'dev', type: 'block-device' }], /only files, directories and symlinks/],
    [[{ name: 'h', type: 'link', linkname: '/etc/shadow' }], /only files, directories and symlinks/],
  ];
  for (const [i, [entries, re]] of cases.entries()) {
    const hash = hashOf(i + 1);
    const { url } = await linkFor(keyA, hash);
    const r = await put(url, await tgzOf(entries));
    assert.equal(r.status, 400, `${entries[0]?.name}: ${JSON.stringify(r.body)}`);
    assert.match(r.body?.message ?? '', re);
    assert.equal((await linkFor(keyA, hash)).present, false, 'a refused upload was kept');
  }
  // A link is used once, and only for its own hash; no token, no upload.
  const good = await tgzOf([{ name: 'a.txt', body: 'a' }]);
  const { url } = await linkFor(keyA, hashOf(10));
  assert.equal((await put(url.replace(hashOf(10), hashOf(11)), good)).status, 401);
  assert.equal((await put(url, good)).status, 200);
  assert.equal((await put(url, good)).status, 401, 'a used link worked again');
  assert.equal((await put(url.replace(/token=.*/, 'token=guess'), good)).status, 401);
  // Announcing more than the limit is refused before the body is read.
  const status = await putAnnouncing((await linkFor(keyA, hashOf(12))).url, 300 * 1024 * 1024);
  assert.equal(status, 413);
});

test("another team's file set cannot be used, and a hostile symlink set stays inside the build capsule", async () => {
  const keyA = sys.sdk().apiKey;
  // Team A keeps a file set; team B does not see it and cannot build from it.
  const secret = await tgzOf([{ name: 'secret.txt', body: 'team a only' }]);
  const hash = hashOf(20);
  assert.equal((await put((await linkFor(keyA, hash)).url, secret)).status, 200);
  assert.equal((await linkFor(keyB, hash)).present, false);
  const req = await api(keyB, 'POST', '/v3/templates', { name: 'steal' });
  assert.equal(req.status, 202);
  const steal = await api(keyB, 'POST', `/v2/templates/steal/builds/${req.body.buildID}`, {
    fromTemplate: 'minimal',
    steps: [{ type: 'COPY', args: ['secret.txt', '/tmp/s'], filesHash: hash }],
  });
  assert.equal(steal.status, 400);
  assert.match(steal.body.message, /were not uploaded/);
  // Team A's own status/build routes are not team B's.
  assert.equal((await api(keyB, 'GET', `/templates/steal/builds/${req.body.buildID}/status`)).status, 200);
  const reqA = await api(keyA, 'POST', '/v3/templates', { name: 'mine' });
  assert.equal((await api(keyB, 'GET', `/templates/mine/builds/${reqA.body.buildID}/status`)).status, 404);

  // A symlink to /etc and a file "under" it: unpacked by root in the build capsule, never on the host.
  mkdirSync(join(ctxDir, 'evil'), { recursive: true });
  writeFileSync(join(ctxDir, 'evil', 'note.txt'), 'fine');
  const evil = await tgzOf([
    { name: 'evil/', type: 'directory' },
    { name: 'evil/etc', type: 'symlink', linkname: '/etc' },
    { name: `evil/etc/${MARK}`, body: 'pwned' },
  ]);
  const evilHash = hashOf(30);
  assert.equal((await put((await linkFor(keyA, evilHash)).url, evil)).status, 200);
  const build = await api(keyA, 'POST', '/v3/templates', { name: 'symlink-probe' });
  assert.equal(build.status, 202);
  const started = await api(keyA, 'POST', `/v2/templates/symlink-probe/builds/${build.body.buildID}`, {
    fromTemplate: 'base',
    steps: [
      {
        type: 'RUN',
        args: [`ls ${sys.dataDir}/wrenn.db 2>&1; echo host-store-visible=$?; ls -la /etc/${MARK} 2>&1 || true`, 'root'],
      },
      { type: 'COPY', args: ['evil', '/home/user/evil'], filesHash: evilHash },
    ],
  });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  let status: { status: string; logEntries: { message: string }[]; reason?: { message: string } } | undefined;
  const lines: string[] = [];
  for (let i = 0; i < 600; i++) {
    const r = await api(
      keyA,
      'GET',
      `/templates/symlink-probe/builds/${build.body.buildID}/status?logsOffset=${lines.length}`,
    );
    status = r.body;
    lines.push(...(status?.logEntries ?? []).map((e) => e.message));
    if (status?.status === 'ready' || status?.status === 'error') break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const text = lines.join('\n');
  assert.equal(existsSync(`/etc/${MARK}`), false, 'the build wrote into the host /etc');
  assert.match(text, /host-store-visible=[1-9]/, `the host file-set store is visible from the build:\n${text}`);
  console.log(`# symlink probe build: ${status?.status} ${status?.reason?.message ?? ''} (contained either way)`);

  // The neighbour (team B's sandbox) keeps working.
  const r = await neighbour!.commands.run('echo alive');
  assert.equal(r.stdout, 'alive\n');
});
