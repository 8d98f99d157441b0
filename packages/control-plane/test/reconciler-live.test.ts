// The reconciler against a live `wrenn up`: capsules the agent expired (destroyed or paused on
// its own), capsules that vanished from the host, and orphans the database does not know, on
// SQLite and PostgreSQL. Assertions look at the database and the audit log, not at one round's
// report, so a reconciler loop running in the server as well cannot make them flaky.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox, SandboxNotFoundError } from 'e2b';
import { listAuditEvents } from '../src/db/repositories/audit-events.js';
import { getCapsule, setCapsuleState } from '../src/db/repositories/capsules.js';
import { Reconciler } from '../src/reconciler/index.js';
import { type DbKind, type LiveSystem, startLive, stopPostgres, waitFor } from './e2b-live.js';

function defineReconcilerSuite(db: DbKind, slot: number): void {
  describe(`reconciler against wrenn up (${db})`, () => {
    let sys: LiveSystem;
    let rec: Reconciler;
    const dbh = () => sys.cp.ctx.database.db;
    const agentHas = (id: string) => sys.up.agent.manager.list().find((c) => c.id === id);
    const auditKinds = async (id: string) => (await listAuditEvents(dbh(), { capsuleId: id })).items.map((e) => e.kind);
    /** Runs rounds until the capsule's row satisfies `ok`. */
    const reconcileUntil = (
      what: string,
      id: string,
      ok: (c: NonNullable<Awaited<ReturnType<typeof getCapsule>>>) => boolean,
    ) =>
      waitFor(what, async () => {
        await rec.reconcileOnce();
        const c = await getCapsule(dbh(), id);
        return c && ok(c) ? c : undefined;
      });

    before(async () => {
      sys = await startLive({ db, slot });
      rec = new Reconciler(sys.cp.ctx, { orphanGraceMs: 0 });
    });
    after(async () => {
      try {
        await sys?.close();
      } finally {
        if (db === 'postgres') await stopPostgres();
      }
    });

    it('marks a capsule the agent destroyed at its timeout stopped (capsule.expired)', async () => {
      const sbx = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 1_000 });
      await waitFor('the agent to destroy the timed-out capsule', async () =>
        agentHas(sbx.sandboxId) ? undefined : true,
      );
      const c = await reconcileUntil('the row to be stopped', sbx.sandboxId, (r) => r.state === 'stopped');
      assert.ok(c.stoppedAt);
      assert.ok((await auditKinds(sbx.sandboxId)).includes('capsule.expired'));
      await assert.rejects(Sandbox.getInfo(sbx.sandboxId, sys.sdk()), SandboxNotFoundError);
    });

    it('copies a pause the agent made at the timeout into the database; connect resumes it', async () => {
      const sbx = await Sandbox.create('minimal', {
        ...sys.sdk(),
        timeoutMs: 1_000,
        lifecycle: { onTimeout: 'pause' },
      });
      await sbx.files.write('/tmp/mark', 'before timeout');
      await waitFor('the agent to pause the timed-out capsule', async () =>
        agentHas(sbx.sandboxId)?.state === 'paused' ? true : undefined,
      );
      await reconcileUntil('the row to be paused', sbx.sandboxId, (r) => r.state === 'paused');
      assert.ok((await auditKinds(sbx.sandboxId)).includes('capsule.state_synced'));
      assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state, 'paused');
      const back = await Sandbox.connect(sbx.sandboxId, { ...sys.sdk(), timeoutMs: 120_000 });
      assert.equal(await back.files.read('/tmp/mark'), 'before timeout');
      await back.kill();
    });

    it("pushed: the agent's timeout pause and destroy reach the database with no reconcile round", async () => {
      const loops = sys.cp.loops;
      assert.ok(loops, 'the live system runs its state loops');
      // With the system's reconciler stopped, only the agent's pushed changes can move these rows.
      await loops.reconciler.stop();
      try {
        await waitFor('a watch stream to the local agent', async () =>
          loops.watch.watching().length > 0 ? true : undefined,
        );
        const paused = await Sandbox.create('minimal', {
          ...sys.sdk(),
          timeoutMs: 1_000,
          lifecycle: { onTimeout: 'pause' },
        });
        const killed = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 1_000 });
        const p = await waitFor('the paused row', async () => {
          const c = await getCapsule(dbh(), paused.sandboxId);
          return c?.state === 'paused' ? c : undefined;
        });
        assert.equal(p.state, 'paused');
        assert.equal((await Sandbox.getInfo(paused.sandboxId, sys.sdk())).state, 'paused');
        const k = await waitFor('the stopped row', async () => {
          const c = await getCapsule(dbh(), killed.sandboxId);
          return c?.state === 'stopped' ? c : undefined;
        });
        assert.ok(k.stoppedAt);
        const byAgent = async (id: string) =>
          (await listAuditEvents(dbh(), { capsuleId: id })).items
            .filter((e) => (e.data as { by?: string }).by === 'agent')
            .map((e) => e.kind);
        assert.deepEqual(await byAgent(paused.sandboxId), ['capsule.state_synced']);
        assert.deepEqual(await byAgent(killed.sandboxId), ['capsule.expired']);
        await Sandbox.kill(paused.sandboxId, sys.sdk());
      } finally {
        loops.reconciler.start();
      }
    });

    it('marks a capsule that vanished from its host stopped (capsule.lost)', async () => {
      const sbx = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
      await sys.up.agent.manager.destroy(sbx.sandboxId);
      await reconcileUntil('the row to be stopped', sbx.sandboxId, (r) => r.state === 'stopped');
      assert.ok((await auditKinds(sbx.sandboxId)).includes('capsule.lost'));
      const r = await fetch(`${sys.url}/`, {
        headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' },
      });
      assert.equal(r.status, 502, 'the proxy forgot it');
      assert.equal(((await r.json()) as { message: string }).message, 'The sandbox was not found');
    });

    it('destroys orphans: capsules the database does not know, or knows as stopped', async () => {
      const stray = await sys.up.agent.manager.create({ template: 'minimal', timeoutSec: 600 });
      const sbx = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
      // The database says stopped (e.g. a destroy whose agent call was lost), the host still runs it.
      await setCapsuleState(dbh(), sbx.sandboxId, 'stopped');
      await waitFor('both orphans to be destroyed', async () => {
        await rec.reconcileOnce();
        return agentHas(stray.id) || agentHas(sbx.sandboxId) ? undefined : true;
      });
      assert.ok((await auditKinds(sbx.sandboxId)).includes('capsule.orphan_destroyed'));
      assert.ok((await auditKinds(stray.id)).includes('capsule.orphan_destroyed'));
    });

    it('leaves running capsules alone and keeps their deadline in step with the agent', async () => {
      const sbx = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
      // The agent's clock moves (a ping through the agent), the database does not know yet.
      await sys.up.agent.manager.ping(sbx.sandboxId, 1_800);
      const agentExpires = agentHas(sbx.sandboxId)!.expiresAt;
      const c = await reconcileUntil(
        'the deadline to follow the agent',
        sbx.sandboxId,
        (r) => Math.abs((r.expiresAt?.getTime() ?? 0) - agentExpires) <= 1_000,
      );
      assert.equal(c.state, 'running');
      assert.equal((await sbx.commands.run('echo still-here')).stdout, 'still-here\n');
      await sbx.kill();
    });

    it('does not compare an idle host again until the agent or the database changes', async () => {
      const sbx = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
      const hostId = sys.up.agent.hostId;
      // Rounds until one finds the host as the last left it (the create settled on both sides).
      await waitFor('a round that finds the host unchanged', async () =>
        (await rec.reconcileOnce()).hostsUnchanged.includes(hostId) ? true : undefined,
      );
      // The agent changes (a ping moves the deadline): the next round compares, and follows it.
      await sys.up.agent.manager.ping(sbx.sandboxId, 1_200);
      const agentExpires = agentHas(sbx.sandboxId)!.expiresAt;
      const round = await rec.reconcileOnce();
      assert.ok(round.hostsChecked.includes(hostId) && !round.hostsUnchanged.includes(hostId), JSON.stringify(round));
      assert.ok(
        Math.abs(((await getCapsule(dbh(), sbx.sandboxId))?.expiresAt?.getTime() ?? 0) - agentExpires) <= 1_000,
      );
      await waitFor('the host unchanged again', async () =>
        (await rec.reconcileOnce()).hostsUnchanged.includes(hostId) ? true : undefined,
      );
      // The database changes behind the agent's back (the capsule marked stopped): compared at
      // once, and the capsule the agent still runs is an orphan (grace 0 here) and destroyed.
      await setCapsuleState(dbh(), sbx.sandboxId, 'stopped');
      assert.ok(!(await rec.reconcileOnce()).hostsUnchanged.includes(hostId));
      await waitFor('the orphan destroyed', async () => {
        await rec.reconcileOnce();
        return agentHas(sbx.sandboxId) ? undefined : true;
      });
    });
  });
}

defineReconcilerSuite('sqlite', 2);
defineReconcilerSuite('postgres', 3);
