// E2B COPY file sets and their upload links across control-plane replicas (issue 21), on SQLite and
// PostgreSQL: two control planes in this process on one database stand for two replicas behind a
// balancer. A link from one uploads through the other, once; sets are stored in 1 MiB chunks and
// read back whole; a new link replaces a kept set (the SDK's forceUpload) and its old chunks go,
// but not from under a build reading them: that read gets the whole old set, and the chunks go at
// its end (reads racing replacements: each read is one whole upload, only the current one stays).
// Hostile: a reused, expired, re-signed, malformed or other-hash link, an oversized body (announced,
// and streamed without a length), a bad tar, another team's set: each refused with a 4xx and
// nothing kept. The shared HMAC key is created once when replicas race for it. The GC removes sets
// past their TTL (not while their team builds), orphaned chunks (not while read), the reads of
// builds that are gone, and spent link records.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { createApiKey, e2bKeyOf } from '../src/auth/api-keys.js';
import { sharedKey } from '../src/cluster/shared-keys.js';
import { openDatabase, type WrennDatabase } from '../src/db/index.js';
import { createTeam } from '../src/db/repositories/teams.js';
import { createBuild } from '../src/db/repositories/template-builds.js';
import { type RunningControlPlane, startControlPlane } from '../src/server.js';
import { pruneFileSets } from '../src/templates/file-set-gc.js';
import { CHUNK_BYTES, FILE_SET_LIMITS, openFileSet, saveFileSet } from '../src/templates/file-sets.js';
import { issueUploadToken } from '../src/templates/upload-links.js';
import { forEachDialect, freshTarget } from './db-helpers.js';
import { putAnnouncing, storeFileSet, tarOf } from './uploads.js';

/** One buffer as the async body saveFileSet takes. */
async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

const hashOf = (n: number) => n.toString(16).padStart(64, '0');

forEachDialect('E2B file sets across replicas', (dialect) => {
  /** Two control planes ("replicas") on one fresh database, and two teams' E2B keys. */
  async function twoReplicas(t: TestContext) {
    const target = await freshTarget(t, dialect);
    const cps: RunningControlPlane[] = [];
    t.after(async () => {
      for (const cp of cps.reverse()) await cp.close();
    });
    for (let i = 0; i < 2; i++)
      cps.push(
        await startControlPlane({
          listen: { host: '127.0.0.1', port: 0 },
          dataDir: target.dataDir,
          ...(target.databaseUrl ? { databaseUrl: target.databaseUrl } : {}),
          domain: 'localhost',
          publicUrl: 'http://127.0.0.1',
          logLevel: 'silent',
          stateLoops: false,
        }),
      );
    const [a, b] = cps as [RunningControlPlane, RunningControlPlane];
    const db = a.ctx.database.db;
    const teams = [];
    for (const name of ['files-a', 'files-b']) {
      const team = await createTeam(db, { name });
      teams.push({ id: team.id, key: e2bKeyOf((await createApiKey(db, { teamId: team.id, name })).key) });
    }
    const [ta, tb] = teams as [{ id: string; key: string }, { id: string; key: string }];
    const ask = async (cp: RunningControlPlane, key: string, hash: string) => {
      const r = await fetch(`${cp.url}/templates/t/files/${hash}`, { headers: { 'x-api-key': key } });
      assert.equal(r.status, 201);
      return (await r.json()) as { present: boolean; url: string };
    };
    /** PUTs to `cp` the path and query of `link` (whichever replica issued it). */
    const put = async (cp: RunningControlPlane, link: string, body: Buffer | AsyncIterable<Buffer>) => {
      const u = new URL(link);
      const r = await fetch(`${cp.url}${u.pathname}${u.search}`, {
        method: 'PUT',
        body: body as unknown as Blob,
        ...(Buffer.isBuffer(body) ? {} : { duplex: 'half' }),
      } as RequestInit);
      return {
        status: r.status,
        message: ((await r.json().catch(() => null)) as { message?: string } | null)?.message,
      };
    };
    const chunkCount = async () =>
      Number(
        (await db.selectFrom('template_file_chunks').select(db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow())
          .n,
      );
    return { a, b, db, ta, tb, ask, put, chunkCount };
  }

  test('a link from one replica uploads through the other, once; the set is read back whole', async (t) => {
    const { a, b, db, ta, ask, put, chunkCount } = await twoReplicas(t);
    const big = Buffer.alloc(2 * CHUNK_BYTES + 12345);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 0xff;
    const tar = gzipSync(await tarOf([{ name: 'dir/big.bin', body: big }]), { level: 0 });
    assert.ok(tar.length > 2 * CHUNK_BYTES, 'the set spans several chunks');
    const hash = hashOf(1);
    const link = await ask(a, ta.key, hash);
    assert.equal(link.present, false);
    assert.equal((await put(b, link.url, tar)).status, 200);
    const again = await put(a, link.url, tar);
    assert.equal(again.status, 401, 'a used link worked again on the other replica');
    assert.match(again.message ?? '', /already used/);
    assert.equal((await ask(a, ta.key, hash)).present, true);
    assert.equal((await ask(b, ta.key, hash)).present, true);
    const set = await openFileSet(db, ta.id, hash);
    assert.ok(set);
    const parts: Buffer[] = [];
    for await (const c of set.chunks()) parts.push(c);
    assert.equal(parts.length, Math.ceil(tar.length / CHUNK_BYTES));
    assert.ok(Buffer.concat(parts).equals(tar), 'the stored set is the upload, byte for byte');
    await set.close();

    // forceUpload: a new link for a kept set replaces it; the old chunks go.
    const small = gzipSync(await tarOf([{ name: 'x.txt', body: 'x' }]));
    const relink = await ask(b, ta.key, hash);
    assert.equal(relink.present, true);
    assert.notEqual(relink.url, link.url, 're-asking gives a new link');
    assert.equal((await put(a, relink.url, small)).status, 200);
    assert.equal(await chunkCount(), 1);
    const now = await openFileSet(db, ta.id, hash);
    assert.equal(now?.bytes, small.length);
  });

  test('hostile links and bodies are refused with a 4xx and leave nothing', async (t) => {
    const { a, b, db, ta, tb, ask, put, chunkCount } = await twoReplicas(t);
    const good = gzipSync(await tarOf([{ name: 'a.txt', body: 'a' }]));
    const hash = hashOf(2);
    const { url } = await ask(a, ta.key, hash);
    const u = new URL(url);
    const token = u.searchParams.get('token') ?? '';
    const [body, sig] = token.split('.') as [string, string];
    const withToken = (tok: string, h = hash) =>
      `${u.origin}/templates/t/files/${h}/upload?token=${encodeURIComponent(tok)}`;
    // Another hash with this link; a re-signed, a forged-team, and malformed tokens.
    assert.equal((await put(b, withToken(token, hashOf(3)), good)).status, 401);
    const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    assert.equal((await put(b, withToken(`${body}.${flipped}`), good)).status, 401);
    const fields = JSON.parse(Buffer.from(body, 'base64url').toString()) as { t: string };
    const forged = Buffer.from(JSON.stringify({ ...fields, t: tb.id })).toString('base64url');
    assert.equal((await put(b, withToken(`${forged}.${sig}`), good)).status, 401);
    for (const bad of ['guess', 'a.b.c', '.', `${body}.`, 'x'.repeat(600)])
      assert.ok([400, 401].includes((await put(b, withToken(bad), good)).status), bad.slice(0, 20));
    // An expired link (issued two hours ago).
    const old = await issueUploadToken(db, ta.id, hash, Date.now() - 2 * 3600_000);
    const expired = await put(b, withToken(old), good);
    assert.equal(expired.status, 401);
    assert.match(expired.message ?? '', /expired/);
    // A bad hash in the path.
    assert.equal((await put(b, withToken(token, 'nothex'), good)).status, 400);
    // Oversized, announced: refused before the body is read, and the link is not spent by it.
    const announced = await putAnnouncing(withToken(token), FILE_SET_LIMITS.maxUploadBytes + 1, {
      host: '127.0.0.1',
      port: a.port,
    });
    assert.equal(announced, 413);
    // A bad tar: 400, and the link is spent.
    const bad = await put(a, withToken(token), gzipSync(await tarOf([{ name: '../escape', body: 'x' }])));
    assert.equal(bad.status, 400);
    assert.match(bad.message ?? '', /contains '\.\.'/);
    assert.equal((await put(b, withToken(token), good)).status, 401);
    assert.equal((await ask(a, ta.key, hash)).present, false);
    // Oversized, streamed with no length: 413 once past the limit, its chunks removed.
    const over = await ask(b, ta.key, hashOf(4));
    async function* endless() {
      const mib = Buffer.alloc(CHUNK_BYTES);
      for (let sent = 0; sent <= FILE_SET_LIMITS.maxUploadBytes; sent += mib.length) yield mib;
    }
    const streamed = await put(a, over.url, endless());
    assert.equal(streamed.status, 413);
    assert.equal((await ask(a, ta.key, hashOf(4))).present, false);
    assert.equal(await chunkCount(), 0, 'a refused upload left chunks behind');

    // Another team's set: team B neither sees it nor builds from it.
    const mine = await ask(a, ta.key, hashOf(5));
    assert.equal((await put(b, mine.url, good)).status, 200);
    assert.equal((await ask(b, tb.key, hashOf(5))).present, false);
    const req = await fetch(`${b.url}/v3/templates`, {
      method: 'POST',
      headers: { 'x-api-key': tb.key, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'steal' }),
    });
    const { buildID } = (await req.json()) as { buildID: string };
    const steal = await fetch(`${a.url}/v2/templates/steal/builds/${buildID}`, {
      method: 'POST',
      headers: { 'x-api-key': tb.key, 'content-type': 'application/json' },
      body: JSON.stringify({
        fromTemplate: 'minimal',
        steps: [{ type: 'COPY', args: ['a.txt', '/tmp/a'], filesHash: hashOf(5) }],
      }),
    });
    assert.equal(steal.status, 400);
    assert.match(((await steal.json()) as { message: string }).message, /were not uploaded/);
  });

  test('a forceUpload while a build streams the set: the build reads the whole old set, then the old chunks go', async (t) => {
    const { a, b, db, ta, ask, put, chunkCount } = await twoReplicas(t);
    const pattern = (n: number, salt: number) => {
      const buf = Buffer.alloc(n);
      for (let i = 0; i < n; i++) buf[i] = (i * 7 + salt + (i >> 13)) & 0xff;
      return buf;
    };
    const v1 = gzipSync(await tarOf([{ name: 'v1.bin', body: pattern(3 * CHUNK_BYTES + 99, 1) }]), { level: 0 });
    const v2 = gzipSync(await tarOf([{ name: 'v2.bin', body: pattern(CHUNK_BYTES + 5, 2) }]), { level: 0 });
    const hash = hashOf(7);
    assert.equal((await put(b, (await ask(a, ta.key, hash)).url, v1)).status, 200);
    const v1Chunks = await chunkCount();
    assert.equal(v1Chunks, 4);
    const build = await createBuild(db, { template: 'reader', teamId: ta.id, status: 'building' });
    const read = await openFileSet(db, ta.id, hash, build.id);
    assert.ok(read);
    t.after(() => read.close());
    const got: Buffer[] = [];
    const it = read.chunks();
    const first = await it.next();
    assert.ok(!first.done);
    got.push(first.value);
    // The replacement runs while the read is between chunks, through the other replica.
    const replacing = put(a, (await ask(b, ta.key, hash)).url, v2);
    for (let r = await it.next(); !r.done; r = await it.next()) {
      got.push(r.value);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal((await replacing).status, 200);
    assert.ok(Buffer.concat(got).equals(v1), 'the read was not the whole old set');
    assert.equal(read.bytes, v1.length);
    // Replaced: a new build reads the new set; the old chunks stay while the old read is open.
    const fresh = await openFileSet(db, ta.id, hash, build.id);
    assert.ok(fresh);
    const now: Buffer[] = [];
    for await (const c of fresh.chunks()) now.push(c);
    await fresh.close();
    assert.ok(Buffer.concat(now).equals(v2), 'a read after the replacement is not the new set');
    assert.equal(await chunkCount(), v1Chunks + 2);
    await read.close();
    assert.equal(await chunkCount(), 2, "the old set's chunks outlived its last read");
    assert.equal(
      Number(
        (
          await db
            .selectFrom('template_file_readers')
            .select(db.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      ),
      0,
    );
  });

  test('reads and replacements racing: every read is one whole upload, and only the current one is kept', async (t) => {
    const { db, ta, chunkCount } = await twoReplicas(t);
    const hash = hashOf(8);
    const versions: Buffer[] = [];
    for (let v = 0; v < 6; v++)
      versions.push(
        gzipSync(await tarOf([{ name: `v${v}.bin`, body: Buffer.alloc(CHUNK_BYTES + 17 * v, v) }]), { level: 0 }),
      );
    await saveFileSet(db, ta.id, hash, 'race-0', once(versions[0] as Buffer));
    const readWhole = async () => {
      const r = await openFileSet(db, ta.id, hash);
      assert.ok(r);
      const parts: Buffer[] = [];
      for await (const c of r.chunks()) parts.push(c);
      await r.close();
      return Buffer.concat(parts);
    };
    const reads: Promise<Buffer>[] = [];
    const saves: Promise<unknown>[] = [];
    for (let v = 1; v < versions.length; v++) {
      reads.push(readWhole(), readWhole());
      saves.push(saveFileSet(db, ta.id, hash, `race-${v}`, once(versions[v] as Buffer)));
    }
    reads.push(readWhole());
    await Promise.all(saves);
    for (const got of await Promise.all(reads))
      assert.ok(
        versions.some((v) => v.equals(got)),
        'a read mixed uploads or lost chunks',
      );
    const kept = await db
      .selectFrom('template_file_sets')
      .select('upload_id')
      .where('hash', '=', hash)
      .executeTakeFirstOrThrow();
    const left = await db.selectFrom('template_file_chunks').select('upload_id').distinct().execute();
    assert.deepEqual(
      left.map((c) => c.upload_id),
      [kept.upload_id],
      'replaced uploads left chunks behind',
    );
    assert.equal(await chunkCount(), 2);
  });

  test('replicas racing for the shared key agree on one', async (t) => {
    const target = await freshTarget(t, dialect);
    // Opened one after another (SQLite's synchronous lock wait would block this one thread), then raced.
    const handles: WrennDatabase[] = [];
    t.after(async () => {
      for (const h of handles) await h.close();
    });
    for (let i = 0; i < 3; i++) handles.push(await openDatabase(target));
    const keys = await Promise.all(handles.map((h) => sharedKey(h.db, 'race')));
    assert.equal(keys[0]?.length, 32);
    for (const k of keys) assert.ok(k.equals(keys[0] as Buffer));
  });

  test('the GC removes sets past their TTL (not while their team builds), orphan chunks and spent links', async (t) => {
    const { a, db, ta, tb } = await twoReplicas(t);
    const now = Date.now();
    const day = 86_400_000;
    const set = (team: string, n: number, lastUsed: number) =>
      storeFileSet(db, { teamId: team, hash: hashOf(n), uploadId: `up-${n}`, data: Buffer.from('abc'), lastUsed });
    const upload = async (id: string, usedAt: number) =>
      db
        .insertInto('template_uploads')
        .values({ id, team_id: ta.id, hash: hashOf(99), used_at: usedAt, expires_at: usedAt + 3600_000 })
        .execute();
    await set(ta.id, 1, now - 2 * day);
    await set(ta.id, 2, now);
    await set(tb.id, 3, now - 2 * day);
    const busy = await createBuild(db, { template: 'busy', teamId: tb.id, status: 'building' });
    // Chunks no set names: a crashed upload three hours ago, one in flight now; two replaced three
    // hours ago, one still read by a running build, one by a build that is gone (its replica died).
    await upload('crashed', now - 3 * 3600_000);
    await upload('inflight', now);
    for (const [id, build] of [
      ['read-live', busy.id],
      ['read-dead', 'gone-build'],
    ] as const) {
      await upload(id, now - 3 * 3600_000);
      await db
        .insertInto('template_file_readers')
        .values({ id: `r-${id}`, upload_id: id, build_id: build, bytes: 2, chunks: 1, started_at: now - 3600_000 })
        .execute();
    }
    for (const id of ['crashed', 'inflight', 'read-live', 'read-dead'])
      await db
        .insertInto('template_file_chunks')
        .values({ upload_id: id, seq: 0, data: Buffer.from('zz') })
        .execute();

    const r = await pruneFileSets(a.ctx);
    assert.deepEqual(r, { removed: 1, freedBytes: 3, kept: 2 });
    const chunks = (await db.selectFrom('template_file_chunks').select('upload_id').execute()).map((c) => c.upload_id);
    assert.deepEqual(chunks.sort(), ['inflight', 'read-live', 'up-2', 'up-3']);
    const readers = (await db.selectFrom('template_file_readers').select('id').execute()).map((r) => r.id);
    assert.deepEqual(readers, ['r-read-live'], "a dead build's read was not ended");
    const links = (await db.selectFrom('template_uploads').select('id').execute()).map((u) => u.id);
    assert.deepEqual(links, ['inflight'], 'the expired link record stayed');
    // On demand with 0: everything unused goes, still not the building team's.
    assert.equal((await pruneFileSets(a.ctx, { olderThanMs: 0 })).removed, 1);
    assert.deepEqual(
      (await db.selectFrom('template_file_sets').select('team_id').execute()).map((s) => s.team_id),
      [tb.id],
    );
  });
});
