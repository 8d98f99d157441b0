// API keys, the admin key and host registration tokens, on SQLite and PostgreSQL alike.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  ADMIN_KEY_FILE,
  ADMIN_TEAM_ID,
  authenticate,
  authenticateApiKey,
  consumeHostToken,
  createApiKey,
  createHostToken,
  ensureAdmin,
  generateApiKey,
  getApiKey,
  isApiKeyFormat,
  listApiKeys,
  registerHost,
  revokeApiKey,
  sha256Hex,
} from '../src/auth/index.js';
import { createTeam, DbError, deleteTeam, getHost, listHosts } from '../src/db/index.js';
import { forEachDialect } from './db-helpers.js';

describe('generateApiKey', () => {
  test("is 'wrn_' + 32 random [a-z0-9]", () => {
    const keys = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const k = generateApiKey();
      assert.match(k, /^wrn_[a-z0-9]{32}$/);
      assert.ok(isApiKeyFormat(k));
      keys.add(k);
    }
    assert.equal(keys.size, 200);
    for (const bad of [
      '',
      'wrn_',
      `wrn_${'A'.repeat(32)}`,
      `wrk_${'a'.repeat(32)}`,
      `wrn_${'a'.repeat(33)}`,
      ` wrn_${'a'.repeat(32)}`,
    ]) {
      assert.equal(isApiKeyFormat(bad), false, bad);
    }
  });
});

forEachDialect('api keys', (_dialect, fresh) => {
  test('only the hash and a display prefix are stored; the key authenticates its team', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 'acme' });
    const { key, info } = await createApiKey(db, { teamId: team.id, name: 'ci' });
    assert.ok(isApiKeyFormat(key));
    assert.equal(info.prefix, key.slice(0, 12));
    const row = await db.selectFrom('api_keys').selectAll().where('id', '=', info.id).executeTakeFirstOrThrow();
    assert.equal(row.hash, sha256Hex(key));
    assert.ok(!Object.values(row).some((v) => v === key), 'the full key must not be stored');
    assert.equal(info.lastUsedAt, null);

    assert.deepEqual(await authenticate(db, key), team);
    assert.deepEqual(await authenticateApiKey(db, key), { team, apiKeyId: info.id });
    assert.ok((await getApiKey(db, info.id))?.lastUsedAt instanceof Date, 'lastUsedAt is recorded');
    assert.equal(await authenticate(db, generateApiKey()), null, 'unknown key');
    assert.equal(await authenticate(db, key.toUpperCase()), null, 'malformed key');
    assert.equal(await authenticate(db, ''), null);
  });

  test('list, revoke (scoped to the team), revoked keys fail', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const b = await createTeam(db, { name: 'b' });
    const k1 = await createApiKey(db, { teamId: a.id, name: 'one' });
    const k2 = await createApiKey(db, { teamId: a.id, name: 'two' });
    await createApiKey(db, { teamId: b.id, name: 'theirs' });
    assert.deepEqual((await listApiKeys(db, a.id)).map((k) => k.name).sort(), ['one', 'two']);

    assert.equal(await revokeApiKey(db, k1.info.id, b.id), null, 'another team cannot revoke it');
    assert.deepEqual(await authenticate(db, k1.key), a);
    const revoked = await revokeApiKey(db, k1.info.id, a.id);
    assert.ok(revoked?.revokedAt instanceof Date);
    assert.equal(await authenticate(db, k1.key), null);
    assert.deepEqual(await authenticate(db, k2.key), a);
    const again = await revokeApiKey(db, k1.info.id);
    assert.equal(again?.revokedAt?.getTime(), revoked?.revokedAt?.getTime(), 'first revocation time kept');
    assert.equal(await revokeApiKey(db, 'key-none'), null);
    const listed = await listApiKeys(db, a.id);
    assert.ok(listed.find((k) => k.id === k1.info.id)?.revokedAt);

    await deleteTeam(db, a.id);
    assert.equal(await authenticate(db, k2.key), null, 'keys go with their team');
  });

  test('a given key must be well-formed and unique', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    await assert.rejects(
      createApiKey(db, { teamId: a.id, name: 'x', key: 'secret' }),
      /'wrn_' followed by 32 characters/,
    );
    const key = generateApiKey();
    await createApiKey(db, { teamId: a.id, name: 'x', key });
    await assert.rejects(createApiKey(db, { teamId: a.id, name: 'y', key }));
  });
});

forEachDialect('ensureAdmin', (_dialect, fresh) => {
  test('first start creates the admin team and key, written 0600; later starts keep it', async (t) => {
    const { wrenn, dataDir } = await fresh(t);
    const first = await ensureAdmin({ db: wrenn.db, dataDir });
    assert.equal(first.source, 'generated');
    assert.equal(first.team.id, ADMIN_TEAM_ID);
    const file = join(dataDir, ADMIN_KEY_FILE);
    assert.equal(first.file, file);
    assert.equal(readFileSync(file, 'utf8'), `${first.apiKey}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(await authenticate(wrenn.db, first.apiKey), first.team);

    chmodSync(file, 0o644);
    const second = await ensureAdmin({ db: wrenn.db, dataDir });
    assert.equal(second.source, 'file');
    assert.equal(second.apiKey, first.apiKey);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'loosened mode is tightened again');
    assert.equal((await listApiKeys(wrenn.db, ADMIN_TEAM_ID)).length, 1, 'no second key');
  });

  test('WRENN_API_KEY becomes the admin key and is not written to disk; a bad one is refused', async (t) => {
    const { wrenn, dataDir } = await fresh(t);
    const envKey = generateApiKey();
    const r = await ensureAdmin({ db: wrenn.db, dataDir, envKey });
    assert.equal(r.source, 'env');
    assert.equal(r.apiKey, envKey);
    assert.equal(existsSync(join(dataDir, ADMIN_KEY_FILE)), false);
    assert.equal((await authenticate(wrenn.db, envKey))?.id, ADMIN_TEAM_ID);
    assert.equal((await ensureAdmin({ db: wrenn.db, dataDir, envKey })).apiKey, envKey, 'idempotent');
    assert.equal((await listApiKeys(wrenn.db, ADMIN_TEAM_ID)).length, 1);

    await assert.rejects(ensureAdmin({ db: wrenn.db, dataDir, envKey: 'hunter2' }), /WRENN_API_KEY is malformed/);
    const other = await createTeam(wrenn.db, { name: 'other' });
    const { key: taken } = await createApiKey(wrenn.db, { teamId: other.id, name: 'k' });
    await assert.rejects(ensureAdmin({ db: wrenn.db, dataDir, envKey: taken }), /already a key of another team/);
    const [info] = await listApiKeys(wrenn.db, ADMIN_TEAM_ID);
    await revokeApiKey(wrenn.db, info!.id);
    await assert.rejects(
      ensureAdmin({ db: wrenn.db, dataDir, envKey }),
      (e: unknown) => e instanceof DbError && /was revoked/.test(e.message),
    );
  });

  test('a revoked saved key is replaced; a saved key unknown to a new database is adopted', async (t) => {
    const { wrenn, dataDir } = await fresh(t);
    const first = await ensureAdmin({ db: wrenn.db, dataDir });
    const [info] = await listApiKeys(wrenn.db, ADMIN_TEAM_ID);
    await revokeApiKey(wrenn.db, info!.id);
    const replaced = await ensureAdmin({ db: wrenn.db, dataDir });
    assert.equal(replaced.source, 'generated');
    assert.notEqual(replaced.apiKey, first.apiKey);
    assert.equal(readFileSync(join(dataDir, ADMIN_KEY_FILE), 'utf8').trim(), replaced.apiKey);

    const saved = generateApiKey();
    writeFileSync(join(dataDir, ADMIN_KEY_FILE), `${saved}\n`, { mode: 0o600 });
    const adopted = await ensureAdmin({ db: wrenn.db, dataDir });
    assert.equal(adopted.source, 'file');
    assert.equal((await authenticate(wrenn.db, saved))?.id, ADMIN_TEAM_ID);

    writeFileSync(join(dataDir, ADMIN_KEY_FILE), 'not a key\n');
    await assert.rejects(ensureAdmin({ db: wrenn.db, dataDir }), /delete the file/);
  });
});

forEachDialect('host registration tokens', (_dialect, fresh) => {
  const agent = { address: 'http://127.0.0.1:5007', runtimes: ['namespace'], cpuCount: 2, memoryMb: 4096 };

  test('a token registers one host, once; only its hash is stored', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const tok = await createHostToken(db);
    assert.match(tok.token, /^wrh_[a-z0-9]{32}$/);
    const row = await db.selectFrom('host_tokens').selectAll().executeTakeFirstOrThrow();
    assert.equal(row.hash, sha256Hex(tok.token));
    const host = await registerHost(db, { token: tok.token, ...agent });
    assert.equal(host.status, 'online');
    assert.deepEqual(await getHost(db, host.id), host);
    await assert.rejects(
      registerHost(db, { token: tok.token, ...agent, address: 'http://127.0.0.1:5008' }),
      (e: unknown) => e instanceof DbError && e.code === 'unauthenticated',
    );
    assert.equal((await listHosts(db)).length, 1);
    const used = await db.selectFrom('host_tokens').selectAll().executeTakeFirstOrThrow();
    assert.equal(used.host_id, host.id);
  });

  test('re-registering from a known address keeps the host id', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const h1 = await registerHost(db, { token: (await createHostToken(db)).token, ...agent });
    const h2 = await registerHost(db, {
      token: (await createHostToken(db)).token,
      ...agent,
      cpuCount: 8,
      runtimes: ['namespace', 'qemu'],
    });
    assert.equal(h2.id, h1.id);
    assert.equal(h2.cpuCount, 8);
    assert.deepEqual(h2.runtimes, ['namespace', 'qemu']);
    assert.equal((await listHosts(db)).length, 1);
  });

  test('expired, unknown and malformed tokens are refused and leave no host behind', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const expired = await createHostToken(db, { ttlMs: 1 });
    await db
      .updateTable('host_tokens')
      .set({ expires_at: Date.now() - 1 })
      .where('id', '=', expired.id)
      .execute();
    await assert.rejects(registerHost(db, { token: expired.token, ...agent }), /invalid, expired or already used/);
    await assert.rejects(
      registerHost(db, { token: `wrh_${'a'.repeat(32)}`, ...agent }),
      /invalid, expired or already used/,
    );
    assert.equal(await consumeHostToken(db, 'nope', 'host-x'), false);
    const good = await createHostToken(db);
    await assert.rejects(
      registerHost(db, { token: good.token, ...agent, address: '' }),
      /host address must be a non-empty string/,
    );
    assert.deepEqual(await listHosts(db), []);
    assert.ok(
      (await registerHost(db, { token: good.token, ...agent })).id,
      'a failed registration does not use up the token',
    );
    await assert.rejects(createHostToken(db, { ttlMs: 0 }), /ttlMs must be a positive integer/);
  });
});
