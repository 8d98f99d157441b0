// Opening, migrating and the teams/hosts repositories, on SQLite and PostgreSQL alike.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import {
  createCapsule,
  createHost,
  createTeam,
  DbError,
  deleteHost,
  deleteTeam,
  getHost,
  getTeam,
  listCapsules,
  listHostLoads,
  listHosts,
  listTeams,
  markStaleHostsUnreachable,
  migrationNames,
  openDatabase,
  recordHeartbeat,
  renameTeam,
  SQLITE_FILE_NAME,
  setCapsuleState,
  setHostStatus,
} from '../src/db/index.js';
import { isCapsuleId, isHostId, newCapsuleId, newHostId, randomBase36 } from '../src/ids.js';
import { forEachDialect, freshTarget, tempDir } from './db-helpers.js';

describe('ids', () => {
  test('capsule and host ids are a prefix plus lower-case base36', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const c = newCapsuleId();
      const h = newHostId();
      assert.match(c, /^cl-[0-9a-z]{16}$/);
      assert.match(h, /^host-[0-9a-z]{16}$/);
      assert.ok(isCapsuleId(c) && isHostId(h));
      seen.add(c);
    }
    assert.equal(seen.size, 500, 'ids repeat');
    assert.equal(isCapsuleId('cl-ABC'), false);
    assert.equal(isCapsuleId('host-abc'), false);
    assert.equal(isHostId('host-'), false);
  });

  test('randomBase36 uses the whole alphabet and rejects bad lengths', () => {
    const chars = new Set(randomBase36(5000));
    assert.equal(chars.size, 36);
    assert.throws(() => randomBase36(0), RangeError);
  });
});

describe('openDatabase (sqlite specifics)', () => {
  test('creates <dataDir>/wrenn.db in WAL mode with foreign keys on', async (t) => {
    const dir = join(tempDir(t), 'nested', 'data');
    const w = await openDatabase({ dataDir: dir });
    t.after(() => w.close());
    assert.equal(w.dialect, 'sqlite');
    assert.ok(existsSync(join(dir, SQLITE_FILE_NAME)));
    const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(w.db);
    assert.equal(mode.rows[0]?.journal_mode, 'wal');
    const fk = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(w.db);
    assert.equal(fk.rows[0]?.foreign_keys, 1);
    const busy = await sql<{ timeout: number }>`pragma busy_timeout`.execute(w.db);
    assert.equal(busy.rows[0]?.timeout, 5000);
  });

  test('explains what is missing', async () => {
    await assert.rejects(openDatabase({}), /set dataDir .* or databaseUrl/);
    await assert.rejects(openDatabase({ databaseUrl: 'mysql://x/y' }), /DATABASE_URL must start with postgres/);
  });
});

forEachDialect('migrations', (dialect, fresh) => {
  test('applied at open, once; reopening keeps data and applies nothing', async (t) => {
    const { wrenn, reopen } = await fresh(t);
    assert.equal(wrenn.dialect, dialect);
    assert.deepEqual(wrenn.appliedMigrations, migrationNames());
    const team = await createTeam(wrenn.db, { name: 'persisted' });
    await wrenn.close();
    const again = await reopen();
    assert.deepEqual(again.appliedMigrations, []);
    assert.deepEqual(await getTeam(again.db, team.id), team);
    const third = await reopen();
    assert.deepEqual(third.appliedMigrations, []);
  });

  test('control planes (processes) opening a new database at the same time apply each migration once', async (t) => {
    const target = await freshTarget(t, dialect);
    const openDb = join(fileURLToPath(import.meta.url), '..', '..', 'src', 'db', 'open.js');
    // Each child loads the code, says 'ready', and opens only when told to: all of them at once.
    const script = `const { openDatabase } = await import(${JSON.stringify(openDb)});
      process.stdout.write('ready\\n');
      await new Promise((r) => process.stdin.once('data', r));
      const w = await openDatabase(JSON.parse(process.argv[1]));
      process.stdout.write(JSON.stringify(w.appliedMigrations) + '\\n'); await w.close(); process.exit(0);`;
    const children = [0, 1, 2, 3].map(() => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(target)], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      t.after(() => child.kill('SIGKILL'));
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
      });
      const ready = new Promise<void>((resolve, reject) => {
        const check = () => (out.startsWith('ready\n') ? resolve() : undefined);
        child.stdout.on('data', check);
        child.once('exit', () => reject(new Error(`child exited before it was ready: ${err}`)));
      });
      const done = new Promise<string[]>((resolve, reject) => {
        child.once('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out.split('\n')[1] ?? '') as string[])
            : reject(new Error(`open failed: ${err}`)),
        );
      });
      done.catch(() => {}); // awaited below; avoid an unhandled rejection if `ready` fails first
      return { child, ready, done };
    });
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.child.stdin.write('go\n');
    const applied = await Promise.all(children.map((c) => c.done));
    assert.deepEqual(applied.flat().sort(), migrationNames());
    const w = await openDatabase(target);
    t.after(() => w.close());
    assert.deepEqual(w.appliedMigrations, []);
    await createTeam(w.db, { name: 'works' });
  });
});

forEachDialect('teams', (_dialect, fresh) => {
  test('create, get, list, rename, delete', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'alpha' });
    const b = await createTeam(db, { name: 'beta', id: 'team-fixed' });
    assert.match(a.id, /^team-[0-9a-z]+$/);
    assert.equal(b.id, 'team-fixed');
    assert.ok(a.createdAt instanceof Date);
    assert.deepEqual(await getTeam(db, a.id), a);
    assert.deepEqual((await listTeams(db)).map((x) => x.name).sort(), ['alpha', 'beta']);
    assert.equal((await renameTeam(db, a.id, 'gamma'))?.name, 'gamma');
    await assert.rejects(createTeam(db, { name: '  ' }), DbError);
    assert.equal(await deleteTeam(db, a.id), true);
    assert.equal(await deleteTeam(db, a.id), false);
    assert.equal(await getTeam(db, a.id), null);
  });

  test('deleting a team deletes its capsules', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 'doomed' });
    await createCapsule(db, {
      teamId: team.id,
      hostId: null,
      template: 'base',
      runtime: 'namespace',
      vcpus: 1,
      memoryMb: 256,
      timeoutSec: 60,
      metadata: { a: 'b' },
    });
    await deleteTeam(db, team.id);
    assert.equal((await listCapsules(db, { teamId: team.id })).items.length, 0);
  });
});

forEachDialect('hosts', (_dialect, fresh) => {
  test('create, get, list by status, set status, delete', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const h = await createHost(db, {
      address: 'http://127.0.0.1:5007',
      runtimes: ['namespace', 'qemu'],
      cpuCount: 2,
      memoryMb: 4096,
    });
    assert.ok(isHostId(h.id));
    assert.equal(h.status, 'online');
    assert.deepEqual(h.runtimes, ['namespace', 'qemu']);
    assert.deepEqual(await getHost(db, h.id), h);
    const d = await createHost(db, {
      address: 'http://127.0.0.2:5007',
      runtimes: ['namespace'],
      cpuCount: 4,
      memoryMb: 8192,
      status: 'draining',
    });
    assert.deepEqual((await listHosts(db)).map((x) => x.id).sort(), [h.id, d.id].sort());
    assert.deepEqual(
      (await listHosts(db, { status: 'draining' })).map((x) => x.id),
      [d.id],
    );
    assert.equal((await setHostStatus(db, h.id, 'unreachable'))?.status, 'unreachable');
    await assert.rejects(setHostStatus(db, h.id, 'gone' as never), /host status must be one of/);
    assert.equal(await deleteHost(db, d.id), true);
    assert.equal(await getHost(db, d.id), null);
  });

  test('heartbeats record reports, revive unreachable hosts, leave draining ones; stale hosts become unreachable', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const h = await createHost(db, {
      address: 'http://127.0.0.1:5007',
      runtimes: ['namespace'],
      cpuCount: 2,
      memoryMb: 4096,
    });
    const at = new Date(Date.now() + 1000);
    const after = await recordHeartbeat(db, h.id, {
      at,
      capsuleCount: 3,
      allocatedVcpus: 3,
      allocatedMemoryMb: 768,
      runtimes: ['namespace', 'qemu'],
    });
    assert.deepEqual(after?.reported, { capsuleCount: 3, allocatedVcpus: 3, allocatedMemoryMb: 768 });
    assert.deepEqual(after?.runtimes, ['namespace', 'qemu']);
    assert.equal(after?.lastHeartbeatAt?.getTime(), at.getTime());

    assert.deepEqual(await markStaleHostsUnreachable(db, new Date(at.getTime() + 1)), [h.id]);
    assert.equal((await getHost(db, h.id))?.status, 'unreachable');
    assert.deepEqual(
      await markStaleHostsUnreachable(db, new Date(at.getTime() + 1)),
      [],
      'only online hosts are marked',
    );
    assert.equal((await recordHeartbeat(db, h.id))?.status, 'online');
    await setHostStatus(db, h.id, 'draining');
    assert.equal((await recordHeartbeat(db, h.id))?.status, 'draining');
    assert.equal(await recordHeartbeat(db, 'host-missing'), null);
  });

  test('listHostLoads: least loaded first, counting only capsules that hold resources', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const team = await createTeam(db, { name: 't' });
    const mk = (address: string, runtimes: string[]) =>
      createHost(db, { address, runtimes, cpuCount: 8, memoryMb: 16384 });
    const busy = await mk('http://127.0.0.1:1', ['namespace']);
    const light = await mk('http://127.0.0.1:2', ['namespace', 'qemu']);
    const idle = await mk('http://127.0.0.1:3', ['qemu']);
    const offline = await mk('http://127.0.0.1:4', ['namespace']);
    await setHostStatus(db, offline.id, 'unreachable');
    const place = (hostId: string, memoryMb: number) =>
      createCapsule(db, {
        teamId: team.id,
        hostId,
        template: 'base',
        runtime: 'namespace',
        vcpus: 2,
        memoryMb,
        timeoutSec: 60,
      });
    await place(busy.id, 512);
    await place(busy.id, 512);
    const paused = await place(busy.id, 1024);
    await setCapsuleState(db, paused.id, 'paused');
    const stopped = await place(light.id, 4096);
    await setCapsuleState(db, stopped.id, 'stopped');
    const hib = await place(light.id, 4096);
    await setCapsuleState(db, hib.id, 'hibernated');
    await place(light.id, 256);

    const loads = await listHostLoads(db);
    assert.deepEqual(
      loads.map((l) => [l.host.id, l.capsules, l.vcpus, l.memoryMb]),
      [
        [idle.id, 0, 0, 0],
        [light.id, 1, 2, 256],
        [busy.id, 3, 6, 2048],
      ],
    );
    assert.deepEqual(
      (await listHostLoads(db, { runtime: 'namespace' })).map((l) => l.host.id),
      [light.id, busy.id],
    );
    assert.deepEqual(
      (await listHostLoads(db, { status: 'unreachable' })).map((l) => l.host.id),
      [offline.id],
    );
  });
});
