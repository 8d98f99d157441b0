// The control plane sees a capsule die: envd killed on a live `wrenn up` makes the API show the
// capsule as `error` with the agent's reason within 2 s (the in-process agent reports it at once),
// with an audit event `capsule.died`; a control plane that missed it (or a remote agent's) gets it
// from the agent's ListCapsules in one reconcile round. A neighbour capsule keeps working.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Sandbox } from 'e2b';
import { listAuditEvents } from '../../src/db/repositories/audit-events.js';
import { getCapsule, setCapsuleState } from '../../src/db/repositories/capsules.js';
import { Reconciler } from '../../src/reconciler/index.js';
import { type LiveSystem, startLive } from '../e2b-live.js';

const SLOT = 7;
const NOTICE_WITHIN_MS = 2_000;
let sys: LiveSystem;

before(async () => {
  sys = await startLive({ db: 'sqlite', slot: SLOT });
});
after(async () => {
  await sys?.close();
});

/** Kills the capsule's envd from the host (the init's only direct child). */
function killEnvd(id: string): void {
  const init = (sys.up.agent.manager.get(id).handle?.state as { pid?: number } | undefined)?.pid ?? 0;
  assert.ok(init > 0);
  const children = readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const envd = children.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('envd'));
  assert.ok(envd, 'envd found');
  process.kill(envd, 'SIGKILL');
}

async function apiCapsule(id: string): Promise<{ state: string; error: string | null }> {
  const r = await fetch(`${sys.url}/v1/capsules/${id}`, { headers: { 'x-api-key': sys.adminKey } });
  assert.equal(r.status, 200);
  return (await r.json()) as { state: string; error: string | null };
}

test('the API shows a capsule whose envd died as error, with why, within 2 s', async () => {
  const neighbour = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
  const victim = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
  const since = Date.now();
  killEnvd(victim.sandboxId);
  let c = await apiCapsule(victim.sandboxId);
  while (c.state !== 'error') {
    assert.ok(
      Date.now() - since <= NOTICE_WITHIN_MS,
      `the API still says ${c.state} ${Date.now() - since} ms after envd died`,
    );
    await new Promise((r) => setTimeout(r, 50));
    c = await apiCapsule(victim.sandboxId);
  }
  process.stdout.write(`# envd killed: the API said error after ${Date.now() - since} ms\n`);
  assert.match(c.error ?? '', /killed by signal 9/);
  const kinds = (await listAuditEvents(sys.cp.ctx.database.db, { capsuleId: victim.sandboxId })).items.map(
    (e) => e.kind,
  );
  assert.ok(kinds.includes('capsule.died'), `audit: ${kinds.join(', ')}`);
  assert.equal((await neighbour.commands.run('echo ok')).stdout, 'ok\n');

  // A control plane that did not hear it (restarted, or the agent is remote) learns it in one round.
  await setCapsuleState(sys.cp.ctx.database.db, victim.sandboxId, 'running', { from: ['error'], error: null });
  const report = await new Reconciler(sys.cp.ctx).reconcileOnce();
  assert.ok(
    report.synced.some((s) => s.id === victim.sandboxId && s.to === 'error'),
    'synced in the first round',
  );
  const row = await getCapsule(sys.cp.ctx.database.db, victim.sandboxId);
  assert.equal(row?.state, 'error');
  assert.match(row?.error ?? '', /killed by signal 9/);
  await neighbour.kill();
  await Sandbox.kill(victim.sandboxId, sys.sdk());
});
