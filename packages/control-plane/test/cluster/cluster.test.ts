// The cluster on one machine (fixture.ts): PostgreSQL, two `wrenn server` replicas behind HAProxy,
// two host agents each in its own network namespace. Through the official e2b SDK and the native
// API: creates through the balancer land on both hosts, each replica lists, runs commands in and
// kills capsules created through the other; a PTY, a pause and a resume go through the replica
// that did not create the capsule; one replica is killed during a run of creates and execs (the
// balancer replays creates, reads and kills on the other: none fails, and no capsule is made
// twice) and the other takes over the periodic work; one
// agent is killed (its capsules become lost with an event, creates go to the other) and restarted
// (they come back running); a drained host gets no new capsules.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import { sql } from 'kysely';
import { e2bKeyOf } from '../../src/auth/api-keys.js';
import { STATE_LOOPS_LOCK_KEY } from '../../src/cluster/leader-lease.js';
import { openDatabase, type WrennDatabase } from '../../src/db/open.js';
import { waitFor } from '../e2b-live.js';
import { type Cluster, startCluster } from './fixture.js';

// The live tests' poller, with this file's longer default wait and 250 ms steps.
const until = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000) =>
  waitFor(what, fn, timeoutMs, 250);

describe('cluster: 2 replicas on PostgreSQL behind HAProxy, 2 agents in their own network namespaces', () => {
  let c: Cluster;
  let db: WrennDatabase;
  const sdk = (url: string) => ({
    apiKey: e2bKeyOf(c.adminKey),
    apiUrl: url,
    sandboxUrl: url,
    requestTimeoutMs: 60_000,
  });
  const hostOf = async (id: string) =>
    (await db.db
      .selectFrom('capsules')
      .select(['host_id', 'state', 'error'])
      .where('id', '=', id)
      .executeTakeFirst()) ?? undefined;
  const create = (url: string) => Sandbox.create('minimal', { ...sdk(url), timeoutMs: 600_000 });

  before(async () => {
    c = await startCluster({ replicas: 2, agents: 2 });
    db = await openDatabase({ databaseUrl: c.databaseUrl });
  });
  after(async () => {
    await db?.close();
    await c?.stop();
  });

  it('creates through the balancer land on both hosts; every replica lists, execs in and kills them', async () => {
    const made: Sandbox[] = [];
    for (let i = 0; i < 4; i++) made.push(await create(c.balancerUrl));
    const hosts = new Set<string>();
    for (const s of made) hosts.add((await hostOf(s.sandboxId))?.host_id ?? '');
    assert.deepEqual([...hosts].sort(), c.agents.map((a) => a.hostId).sort(), 'least-loaded spreads over both hosts');
    for (const r of c.replicas) {
      const listed = (await Sandbox.list(sdk(r.url)).nextItems()).map((s) => s.sandboxId);
      for (const s of made) assert.ok(listed.includes(s.sandboxId), `replica ${r.index} lists ${s.sandboxId}`);
      for (const s of made) {
        const via = await Sandbox.connect(s.sandboxId, sdk(r.url));
        const out = await via.commands.run(`echo ${r.index}-${s.sandboxId}`);
        assert.equal(out.stdout, `${r.index}-${s.sandboxId}\n`);
      }
    }
    // Native API on replica 1 for capsules made through the balancer, kill through replica 0.
    const native = await fetch(`${c.replicas[1]?.url}/v1/capsules`, { headers: { 'x-api-key': c.adminKey } });
    assert.equal(native.status, 200);
    for (const s of made) assert.equal(await Sandbox.kill(s.sandboxId, sdk(c.replicas[0]?.url ?? '')), true);
    for (const s of made) assert.equal((await hostOf(s.sandboxId))?.state, 'stopped');
  });

  it('a PTY, a pause and a resume through the replica that did not create the capsule', async () => {
    const [r0, r1] = c.replicas as [Cluster['replicas'][0], Cluster['replicas'][0]];
    const made = await create(r0.url);
    try {
      const via1 = await Sandbox.connect(made.sandboxId, sdk(r1.url));
      let out = '';
      const term = await via1.pty.create({
        cols: 80,
        rows: 24,
        onData: (d) => void (out += Buffer.from(d).toString('utf8')),
      });
      await via1.pty.sendInput(term.pid, new TextEncoder().encode('echo pty-$((6*7))-r1\n'));
      await until('the PTY through replica 1 to echo its marker', async () =>
        out.includes('pty-42-r1') ? true : undefined,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the PTY printed: ${JSON.stringify(out.slice(-400))}`);
      });
      assert.ok(await via1.pty.kill(term.pid));
      await via1.files.write('/tmp/kept', 'before pause');
      assert.equal(await via1.pause(), true, 'paused through replica 1');
      assert.equal((await hostOf(made.sandboxId))?.state, 'paused');
      const back = await Sandbox.connect(made.sandboxId, sdk(r0.url));
      assert.equal((await hostOf(made.sandboxId))?.state, 'running', 'resumed through replica 0');
      assert.equal(await back.files.read('/tmp/kept'), 'before pause');
      assert.equal((await back.commands.run('echo r0')).stdout, 'r0\n');
    } finally {
      await Sandbox.kill(made.sandboxId, sdk(r1.url)).catch(() => undefined);
    }
  });

  /** The pid in the application_name of the session holding the state loops' lease. */
  const leaseHolderPid = async () => {
    const r = await sql<{
      app: string;
    }>`select a.application_name as app from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.classid = ${Number(STATE_LOOPS_LOCK_KEY >> 32n)} and l.objid = ${Number(STATE_LOOPS_LOCK_KEY & 0xffffffffn)}`.execute(
      db.db,
    );
    const m = /^wrenn-lease-(\d+)$/.exec(r.rows[0]?.app ?? '');
    return m ? Number(m[1]) : undefined;
  };

  it('a replica killed during creates and execs: the balancer replays creates, reads and kills; the other takes the lease', async (t) => {
    let [r0, r1] = c.replicas as [Cluster['replicas'][0], Cluster['replicas'][0]];
    type Step = 'create' | 'exec' | 'kill';
    const results: { ok: boolean; step?: Step; err?: string }[] = [];
    const runStart = Date.now();
    let stop = false;
    const worker = async () => {
      while (!stop) {
        let step: Step = 'create';
        let s: Sandbox | undefined;
        try {
          s = await create(c.balancerUrl);
          step = 'exec';
          const out = await s.commands.run('echo hi');
          assert.equal(out.stdout, 'hi\n');
          step = 'kill';
          await s.kill();
          results.push({ ok: true });
        } catch (err) {
          const cause = (err as { cause?: unknown }).cause;
          results.push({ ok: false, step, err: `${String(err)}${cause ? ` (${String(cause)})` : ''}` });
          if (s) await Sandbox.kill(s.sandboxId, sdk(c.balancerUrl)).catch(() => undefined);
        }
      }
    };
    const workers = [worker(), worker()];
    // The next tests need both replicas: the killed one starts again even when this test fails.
    t.after(async () => {
      stop = true;
      await Promise.all(workers);
      if (r0.proc?.exitCode !== null || r0.proc?.signalCode !== null) await r0.start();
    });
    // Kill the replica holding the lease, so the take-over is seen too.
    const holderPid = await until('a lease holder', leaseHolderPid);
    if (r1.proc?.pid === holderPid) [r0, r1] = [r1, r0];
    assert.equal(r0.proc?.pid === holderPid || r1.proc?.pid === holderPid, true, 'a replica holds the lease');
    await until('a few rounds', async () => (results.length >= 2 ? true : undefined));
    await r0.kill('SIGKILL');
    const atKill = results.length;
    await until('rounds after the kill', async () => (results.length >= atKill + 4 ? true : undefined), 90_000);
    stop = true;
    await Promise.all(workers);
    const failed = results.filter((r) => !r.ok);
    t.diagnostic(
      `replica kill: ${results.length} create+exec+kill rounds, ${failed.length} failed (${failed
        .map((r) => `${r.step}: ${r.err}`)
        .join('; ')})`,
    );
    // Creates (keyed by the balancer) and kills are replayed on the survivor: none may fail. A
    // command's request (a POST to envd through the proxy) is not replayed (the command may have
    // run): only those in flight at the kill may fail, and only in the two rounds then running.
    assert.deepEqual(
      failed.filter((r) => r.step !== 'exec'),
      [],
      'no create or kill fails',
    );
    assert.deepEqual(
      results.slice(atKill + 2).filter((r) => !r.ok),
      [],
      'after the requests in flight, everything goes through the surviving replica',
    );
    // A replayed create made no second capsule: every capsule of the run is gone (each round kills
    // its own), none left running or starting by a create cut off on the dead replica.
    let left: unknown[] = [];
    await until(
      'no capsule of the run left on a host',
      async () => {
        left = await db.db
          .selectFrom('capsules')
          .select(['id', 'state', 'error'])
          .where('created_at', '>=', runStart)
          .where('state', 'in', ['starting', 'running', 'paused'])
          .execute();
        return left.length === 0 ? true : undefined;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; still there: ${JSON.stringify(left)}`);
    });
    // The survivor runs the periodic work: it marks a silent host within seconds (next test), and
    // it serves the API.
    const res = await fetch(`${r1.url}/v1/hosts`, { headers: { 'x-api-key': c.adminKey } });
    assert.equal(res.status, 200);
    await until('the survivor to hold the lease', async () =>
      (await leaseHolderPid()) === r1.proc?.pid ? true : undefined,
    );
  });

  it('a killed agent: its capsules become lost with an event, creates go to the other host, and come back when it returns', async () => {
    const [a0, a1] = c.agents as [Cluster['agents'][0], Cluster['agents'][0]];
    // Drain a1 so the capsule lands on a0, then open it again.
    await fetch(`${c.balancerUrl}/v1/hosts/${a1.hostId}/drain`, {
      method: 'POST',
      headers: { 'x-api-key': c.adminKey },
    });
    const victim = await create(c.balancerUrl);
    assert.equal((await hostOf(victim.sandboxId))?.host_id, a0.hostId, 'a drained host gets no new capsules');
    await victim.commands.run('echo kept > /tmp/kept');
    await fetch(`${c.balancerUrl}/v1/hosts/${a1.hostId}/undrain`, {
      method: 'POST',
      headers: { 'x-api-key': c.adminKey },
    });

    await a0.kill('SIGKILL');
    const lost = await until('the capsule marked lost', async () => {
      const r = await hostOf(victim.sandboxId);
      return r?.state === 'error' && /host unreachable/.test(r.error ?? '') ? r : undefined;
    });
    assert.ok(lost);
    const events = await db.db
      .selectFrom('audit_events')
      .select('kind')
      .where('capsule_id', '=', victim.sandboxId)
      .execute();
    assert.ok(
      events.some((e) => e.kind === 'capsule.host_unreachable'),
      'an event says why',
    );
    const fresh = await create(c.balancerUrl);
    assert.equal((await hostOf(fresh.sandboxId))?.host_id, a1.hostId, 'creates go to the live host');
    assert.equal((await fresh.commands.run('echo ok')).stdout, 'ok\n');

    await a0.start();
    await until('the capsule back running', async () =>
      (await hostOf(victim.sandboxId))?.state === 'running' ? true : undefined,
    );
    for (const r of c.replicas) {
      const s = await Sandbox.connect(victim.sandboxId, sdk(r.url));
      assert.equal((await s.commands.run('cat /tmp/kept')).stdout, 'kept\n', `through replica ${r.index}`);
    }
    await Sandbox.kill(victim.sandboxId, sdk(c.balancerUrl));
    await Sandbox.kill(fresh.sandboxId, sdk(c.balancerUrl));
  });
});
