// `wrenn host drain <id>`: only the admin key drains; a drained host shows as draining, the
// scheduler sends new capsules elsewhere (and says why when no other host is left), and draining
// survives the host going silent and answering again. Through the API and the CLI (which calls the SDK's
// Host; the SDK itself is built after this package, so this test does not import it).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensureAdmin } from '../../src/auth/admin.js';
import { createApiKey } from '../../src/auth/api-keys.js';
import { createHost, markStaleHostsUnreachable, recordHeartbeat } from '../../src/db/repositories/hosts.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { NoHostError, pickHost } from '../../src/scheduler/least-loaded.js';
import { type RunningControlPlane, startControlPlane } from '../../src/server.js';

const run = promisify(execFile);
const WRENN = new URL('../../../../cli/bin/wrenn.js', import.meta.url).pathname;

describe('host drain (API, SDK, CLI, scheduler)', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let adminKey: string;
  let userKey: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wrenn-drain-'));
    cp = await startControlPlane({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: dir,
      domain: 'localhost',
      publicUrl: 'http://127.0.0.1',
      logLevel: 'silent',
      stateLoops: false,
      readyWithHosts: true,
    });
    const db = cp.ctx.database.db;
    adminKey = (await ensureAdmin({ db, dataDir: dir })).apiKey;
    const team = await createTeam(db, { name: 'user' });
    userKey = (await createApiKey(db, { teamId: team.id, name: 'u' })).key;
    for (const id of ['h-a', 'h-b'])
      await createHost(db, {
        id,
        address: `http://10.99.0.${id === 'h-a' ? 1 : 2}:5007`,
        runtimes: ['namespace'],
        cpuCount: 4,
        memoryMb: 4096,
      });
  });
  after(async () => {
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (path: string, key?: string) =>
    fetch(`${cp.url}${path}`, { method: 'POST', headers: key ? { 'x-api-key': key } : {} });
  type HostJson = { id: string; status: string; draining: boolean };
  const listHosts = async (): Promise<HostJson[]> => {
    const res = await fetch(`${cp.url}/v1/hosts`, { headers: { 'x-api-key': adminKey } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { hosts: HostJson[] }).hosts;
  };
  const setDrain = async (id: string, drain: boolean): Promise<HostJson> => {
    const res = await post(`/v1/hosts/${id}/${drain ? 'drain' : 'undrain'}`, adminKey);
    assert.equal(res.status, 200);
    return (await res.json()) as HostJson;
  };

  it('only the admin key drains; unknown hosts are 404', async () => {
    assert.equal((await post('/v1/hosts/h-a/drain')).status, 401);
    assert.equal((await post('/v1/hosts/h-a/drain', userKey)).status, 403);
    const missing = await post('/v1/hosts/nope/drain', adminKey);
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: { message: string } }).error.message, /no host nope/);
    const hosts = await listHosts();
    assert.ok(
      hosts.every((h) => !h.draining && h.status === 'online'),
      'nothing drained by refused calls',
    );
  });

  it('a drained host takes no new capsules; the scheduler names why when none is left', async () => {
    const db = cp.ctx.database.db;
    const req = { vcpus: 1, memoryMb: 256, runtime: 'namespace' };
    const h = await setDrain('h-a', true);
    assert.equal(h.draining, true);
    assert.equal(h.status, 'draining');
    for (let i = 0; i < 5; i++) assert.equal((await pickHost(db, req)).host.id, 'h-b');
    await setDrain('h-b', true);
    await assert.rejects(
      pickHost(db, req),
      (err: unknown) => err instanceof NoHostError && /drained/.test(err.message),
    );
    await setDrain('h-b', false);
    assert.equal((await pickHost(db, req)).host.id, 'h-b');
  });

  it('draining survives the host going silent and answering again', async () => {
    const db = cp.ctx.database.db;
    assert.equal((await fetch(`${cp.url}/health`)).status, 200, 'ready while a host is online and open');
    assert.deepEqual(await markStaleHostsUnreachable(db, new Date(Date.now() + 1000)), ['h-a', 'h-b']);
    const down = await fetch(`${cp.url}/health`);
    assert.equal(down.status, 503, 'no host online: not ready');
    assert.match(((await down.json()) as { reason: string }).reason, /no host agent is online/);
    let a = (await listHosts()).find((h) => h.id === 'h-a');
    assert.equal(a?.status, 'unreachable');
    assert.equal(a?.draining, true);
    await recordHeartbeat(db, 'h-a', {});
    await recordHeartbeat(db, 'h-b', {});
    a = (await listHosts()).find((h) => h.id === 'h-a');
    assert.equal(a?.status, 'draining', 'back online, still drained');
    assert.equal((await pickHost(db, { vcpus: 1, memoryMb: 256, runtime: 'namespace' })).host.id, 'h-b');
    assert.equal((await fetch(`${cp.url}/health`)).status, 200, 'h-b is online and open again');
  });

  it('wrenn host drain / undrain / ls', async () => {
    const env = { ...process.env, WRENN_API_KEY: adminKey, WRENN_BASE_URL: cp.url, HOME: dir };
    await run(process.execPath, [WRENN, 'host', 'undrain', 'h-a'], { env });
    const drained = await run(process.execPath, [WRENN, 'host', 'drain', 'h-b'], { env });
    assert.match(drained.stderr, /host h-b drained/);
    const ls = await run(process.execPath, [WRENN, 'host', 'ls', '--json'], { env });
    const list = JSON.parse(ls.stdout) as { id: string; status: string; draining: boolean }[];
    assert.deepEqual(list.map((h) => [h.id, h.status, h.draining]).sort(), [
      ['h-a', 'online', false],
      ['h-b', 'draining', true],
    ]);
    const userEnv = { ...env, WRENN_API_KEY: userKey };
    await assert.rejects(run(process.execPath, [WRENN, 'host', 'drain', 'h-a'], { env: userEnv }), (err: unknown) =>
      /admin/.test(String((err as { stderr?: string }).stderr)),
    );
  });
});
