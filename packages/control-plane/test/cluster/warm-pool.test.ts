// Warm pools in scheduling, on the cluster on one machine (fixture.ts: PostgreSQL, two replicas
// behind HAProxy, two agents in their own network namespaces, neither with a warm pool of its own).
// An admin gives one host a pool of `minimal` through the CLI (`wrenn host warm-pool`, SDK
// Host.setWarmPool) on replica 0; the pool is reported by heartbeat and seen by replica 1, which
// holds no in-memory state of it; a create of `minimal` through replica 1 goes to that host and
// claims the pooled capsule, even when that host is the more loaded one; a create it cannot claim
// (another shape, an egress policy) goes by load. The agent restarts with no pool of its own and
// gets the admin's sizes again from the host monitor. Refusals: no key, a user's key, bad sizes,
// an unknown template or host.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createApiKey } from '../../src/auth/api-keys.js';
import { openDatabase, type WrennDatabase } from '../../src/db/open.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { waitFor } from '../e2b-live.js';
import { type Cluster, startCluster } from './fixture.js';

const run = promisify(execFile);
const WRENN = new URL('../../../../cli/bin/wrenn.js', import.meta.url).pathname;

type HostJson = {
  id: string;
  capsules: number;
  warm_pools: { template: string; ready: number; target: number }[];
  warm_pool_target: Record<string, number> | null;
};
type CapsuleJson = { id: string; host_id: string };

describe('cluster: per-template warm pools in scheduling', () => {
  let c: Cluster;
  let db: WrennDatabase;
  let userKey: string;
  /** The host least-loaded scheduling would pick on a tie (lower id), and the one given the pool. */
  let coldHost: string;
  let warmHost: string;
  const made: string[] = [];

  const api = async (url: string, method: string, path: string, body?: unknown, key: string | null = c.adminKey) => {
    const r = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(key ? { 'x-api-key': key } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const hostVia = async (url: string, id: string): Promise<HostJson | undefined> =>
    ((await api(url, 'GET', '/v1/hosts')).body as { hosts: HostJson[] }).hosts.find((h) => h.id === id);
  /**
   * Waits for a heartbeat taken after `since` (so it counts every capsule placed before) that says
   * the host has `ready` pooled `minimal`, then checks replica `url` shows the same.
   */
  const readyVia = async (url: string, id: string, ready: number, since = Date.now()) => {
    await waitFor(
      `a report from host ${id} after ${since} with ${ready} ready minimal`,
      async () => {
        const row = await db.db.selectFrom('hosts').select('warm_pools').where('id', '=', id).executeTakeFirst();
        const w = JSON.parse(row?.warm_pools ?? 'null') as {
          at: number;
          pools: { template: string; ready: number }[];
        } | null;
        return w && w.at > since && w.pools.find((p) => p.template === 'minimal')?.ready === ready ? true : undefined;
      },
      90_000,
      250,
    );
    const h = await hostVia(url, id);
    assert.equal(h?.warm_pools.find((p) => p.template === 'minimal')?.ready, ready, `${url} shows the report`);
    return h as HostJson;
  };
  const create = async (url: string, body: Record<string, unknown>) => {
    const r = await api(url, 'POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const cap = r.body as CapsuleJson;
    made.push(cap.id);
    const events = await api(url, 'GET', `/v1/capsules/${cap.id}/events`);
    const created = (events.body as { events: { kind: string; data: Record<string, unknown> }[] }).events.find(
      (e) => e.kind === 'capsule.created',
    );
    return { host: cap.host_id, warm: created?.data.warm_pool };
  };
  /** The hosts as the scheduler read them, for a failure's message. */
  const hostRows = async () =>
    JSON.stringify(
      await db.db
        .selectFrom('hosts')
        .select(['id', 'runtimes', 'capsule_room', 'full_reason', 'warm_pools', 'warm_pool_target'])
        .execute(),
    );
  /** A create and where it went (and whether it claimed a pooled capsule), or a failure naming the hosts' rows. */
  const placed = async (
    url: string,
    body: Record<string, unknown>,
    want: { host: string; warm: boolean },
    why: string,
  ) => {
    const before = await hostRows();
    const got = await create(url, body);
    if (got.host !== want.host || got.warm !== want.warm)
      assert.fail(`${why}: went to ${JSON.stringify(got)}, expected ${JSON.stringify(want)}; hosts before: ${before}`);
  };

  before(async () => {
    c = await startCluster({ replicas: 2, agents: 2 });
    db = await openDatabase({ databaseUrl: c.databaseUrl });
    const team = await createTeam(db.db, { name: 'user' });
    userKey = (await createApiKey(db.db, { teamId: team.id, name: 'u' })).key;
    [coldHost, warmHost] = c.agents.map((a) => a.hostId).sort() as [string, string];
  });
  after(async () => {
    for (const id of made) await api(c.balancerUrl, 'DELETE', `/v1/capsules/${id}`).catch(() => undefined);
    await db?.close();
    await c?.stop();
  });

  it('only the admin key sets a pool; bad sizes, unknown templates and hosts are refused', async () => {
    const r0 = c.replicas[0]?.url ?? '';
    const put = (body: unknown, key: string | null = c.adminKey, id = warmHost) =>
      api(r0, 'PUT', `/v1/hosts/${id}/warm-pool`, body, key);
    assert.equal((await put({ sizes: { minimal: 1 } }, null)).status, 401);
    assert.equal((await put({ sizes: { minimal: 1 } }, userKey)).status, 403);
    assert.equal((await put({ sizes: { minimal: 1000 } })).status, 400);
    assert.equal((await put({ sizes: { minimal: -1 } })).status, 400);
    assert.equal((await put({ sizes: { minimal: 1.5 } })).status, 400);
    assert.equal((await put({ sizes: { 'Bad Name': 1 } })).status, 400);
    assert.equal((await put({ sizes: { minimal: 1 }, extra: true })).status, 400);
    assert.equal((await put({ minimal: 1 })).status, 400);
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`t${i}`, 1]));
    assert.equal((await put({ sizes: many })).status, 400);
    const unknown = await put({ sizes: { 'no-such-template': 1 } });
    assert.equal(unknown.status, 404);
    assert.match(JSON.stringify(unknown.body), /no template no-such-template/);
    assert.equal((await put({ sizes: { minimal: 1 } }, c.adminKey, 'host-nope')).status, 404);
    assert.equal((await api(r0, 'DELETE', `/v1/hosts/${warmHost}/warm-pool`, undefined, userKey)).status, 403);
    const h = await hostVia(r0, warmHost);
    assert.equal(h?.warm_pool_target, null, 'no refused call kept anything');
    assert.deepEqual(h?.warm_pools, []);
  });

  it('a create of the template goes to the host with a ready one, through the other replica, even when it is the more loaded', async (t) => {
    const [r0, r1] = c.replicas.map((r) => r.url) as [string, string];
    const home = mkdtempSync(join(tmpdir(), 'wrenn-warm-cli-'));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const env = { ...process.env, WRENN_API_KEY: c.adminKey, WRENN_BASE_URL: r0, HOME: home };
    const set = await run(process.execPath, [WRENN, 'host', 'warm-pool', warmHost, 'minimal=1'], { env });
    assert.match(set.stderr, new RegExp(`host ${warmHost} keeps minimal=1`));
    assert.deepEqual((await hostVia(r1, warmHost))?.warm_pool_target, { minimal: 1 });

    await readyVia(r1, warmHost, 1);
    // On a tie of load the lower id (coldHost) would win: the ready capsule decides.
    await placed(r1, {}, { host: warmHost, warm: true }, 'a tie of load');
    // Now warmHost carries one capsule more than coldHost; once its pool is ready again, it still wins.
    await readyVia(r1, warmHost, 1);
    await placed(r1, {}, { host: warmHost, warm: true }, 'the more loaded host');
    assert.equal((await hostVia(r1, warmHost))?.capsules, 2);
    assert.equal((await hostVia(r1, coldHost))?.capsules, 0);

    // Creates that cannot claim a pooled capsule go by load (coldHost has none, then one).
    await readyVia(r1, warmHost, 1);
    await placed(r0, { network: { deny_out: ['10.0.0.0/8'] } }, { host: coldHost, warm: false }, 'an egress policy');
    await placed(r1, { vcpus: 2 }, { host: coldHost, warm: false }, 'another shape');

    const ls = await run(process.execPath, [WRENN, 'host', 'ls'], { env });
    assert.match(ls.stdout, /minimal 1\/1/);
  });

  it('an agent restarted without a pool of its own gets the sizes set for it again', async () => {
    const r1 = c.replicas[1]?.url ?? '';
    const agent = c.agents.find((a) => a.hostId === warmHost);
    assert.ok(agent);
    await agent.kill('SIGTERM');
    await agent.start();
    // The fresh agent reports no pool until the host monitor sends it the admin's sizes.
    const back = await readyVia(r1, warmHost, 1);
    assert.deepEqual(back.warm_pools, [{ template: 'minimal', ready: 1, target: 1 }]);
    await placed(r1, {}, { host: warmHost, warm: true }, 'after the restart');
  });

  it('sizes of none empty the pool; forgetting the sizes leaves the agent as it is', async () => {
    const r0 = c.replicas[0]?.url ?? '';
    const none = await api(r0, 'PUT', `/v1/hosts/${warmHost}/warm-pool`, { sizes: {} });
    assert.equal(none.status, 200);
    assert.deepEqual((none.body as HostJson).warm_pools, [], 'the ready capsule went at once');
    assert.deepEqual((none.body as HostJson).warm_pool_target, {});
    const cleared = await api(r0, 'DELETE', `/v1/hosts/${warmHost}/warm-pool`);
    assert.equal(cleared.status, 200);
    assert.equal((cleared.body as HostJson).warm_pool_target, null);
    // With coldHost emptied, warmHost is the more loaded and has no pool: creates go by load.
    for (const id of made.splice(0)) {
      const cap = (await api(r0, 'GET', `/v1/capsules/${id}`)).body as CapsuleJson;
      if (cap.host_id === coldHost) assert.equal((await api(r0, 'DELETE', `/v1/capsules/${id}`)).status, 204);
      else made.push(id);
    }
    assert.equal((await create(r0, {})).host, coldHost);
  });
});
