// Hostile probe: a tenant kills its own envd (root inside: kill -9 of envd), or it dies from the
// host. The agent notices through the init's pidfd, with no timer per capsule, and within 2 s
// reports the capsule as `error` with why (signal and envd.log's tail); a neighbour keeps working;
// a dead warm-pool capsule is dropped and replaced, never handed out; paused and hibernated
// capsules are not taken for dead; capsules re-adopted after an agent restart are watched too.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { CapsuleState, PauseMode } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { SandboxManager } from '../../src/manager/manager.js';
import { leftovers, newDataDir, sleep, startTestAgent, type TestAgent, teardown, text } from '../agent-helpers.js';

const NOTICE_WITHIN_MS = 2_000;
let dataDir = '';
let t: TestAgent | undefined;
const created: string[] = [];

before(async () => {
  dataDir = newDataDir();
  t = await startTestAgent(dataDir, {}, { warmPool: { minimal: 1 } });
});

after(async () => {
  await teardown(t, dataDir);
  const left = leftovers(dataDir, created);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

const agent = () => {
  if (!t) throw new Error('agent not started');
  return t;
};

async function newCapsule(): Promise<string> {
  const { capsule } = await agent().client.createCapsule({ template: 'minimal', timeoutSec: 600 });
  assert.ok(capsule);
  created.push(capsule.id);
  return capsule.id;
}

/** Host pid of the capsule's init (namespace runtime) and of envd, its only direct child. */
function pidsOf(m: SandboxManager, id: string): { init: number; envd: number } {
  const init = (m.get(id).handle?.state as { pid?: number } | undefined)?.pid ?? 0;
  assert.ok(init > 0, `capsule ${id} has an init pid`);
  const children = readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const envd = children.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('envd'));
  assert.ok(envd, `envd among the init's children (${children.join(',')})`);
  return { init, envd };
}

/** Waits (up to the notice deadline) for the manager to report `error`; returns the time it took. */
async function waitForError(m: SandboxManager, id: string, since: number): Promise<number> {
  for (;;) {
    const rec = m.list().find((c) => c.id === id);
    if (rec?.state === 'error') return Date.now() - since;
    const took = Date.now() - since;
    assert.ok(took <= NOTICE_WITHIN_MS, `capsule ${id} still ${rec?.state ?? 'gone'} ${took} ms after its envd died`);
    await sleep(20);
  }
}

async function echo(id: string, what: string): Promise<void> {
  const r = await agent().client.exec({ capsuleId: id, cmd: '/bin/sh', args: ['-c', `echo ${what}`] });
  assert.equal(text(r.stdout), `${what}\n`);
}

test('root inside kills envd: error within 2 s with the signal and the log tail; the neighbour keeps working', async () => {
  const m = agent().agent.manager;
  const neighbour = await newCapsule();
  const victim = await newCapsule();
  const since = Date.now();
  // The exec's shell is envd's child: $PPID is envd. The call itself dies with envd.
  await agent()
    .client.exec({ capsuleId: victim, cmd: '/bin/sh', args: ['-c', 'kill -9 $PPID; sleep 5'], user: 'root' })
    .catch(() => undefined);
  const took = await waitForError(m, victim, since);
  const rec = m.get(victim);
  assert.match(rec.error ?? '', /killed by signal 9/, `the reason names the signal: ${rec.error}`);
  assert.match(rec.error ?? '', /last lines of envd\.log/);
  process.stdout.write(`# envd killed from inside: agent reported error after ${took} ms\n`);
  // Over the service: GetCapsule says error with the reason; calls into it fail clearly.
  const got = (await agent().client.getCapsule({ id: victim })).capsule;
  assert.equal(got?.state, CapsuleState.ERROR);
  assert.equal(got?.error, rec.error);
  await assert.rejects(agent().client.exec({ capsuleId: victim, cmd: '/bin/true' }), /is error/);
  await echo(neighbour, 'neighbour-alive');
  // A dead capsule is still destroyed cleanly.
  await agent().client.destroyCapsule({ id: victim });
  assert.equal(
    m.list().find((c) => c.id === victim),
    undefined,
  );
});

test('paused (frozen) and hibernated capsules are not taken for dead', async () => {
  const m = agent().agent.manager;
  const frozen = await newCapsule();
  const hib = await newCapsule();
  await agent().client.pauseCapsule({ id: frozen, mode: PauseMode.FREEZE });
  await agent().client.pauseCapsule({ id: hib, mode: PauseMode.HIBERNATE });
  await sleep(NOTICE_WITHIN_MS + 500);
  assert.equal(m.get(frozen).state, 'paused');
  assert.equal(m.get(hib).state, 'hibernated');
  await agent().client.resumeCapsule({ id: frozen });
  await agent().client.resumeCapsule({ id: hib });
  await echo(frozen, 'thawed');
  await echo(hib, 'woke');
  // The resumed (rebooted) capsule is watched again: its new envd dying is noticed.
  const since = Date.now();
  process.kill(pidsOf(m, hib).envd, 'SIGKILL');
  await waitForError(m, hib, since);
});

test('a dead warm-pool capsule is dropped and replaced, never handed out', async () => {
  const m = agent().agent.manager;
  for (let i = 0; m.warmPoolReady('minimal') < 1; i++) {
    assert.ok(i < 300, 'the warm pool filled');
    await sleep(100);
  }
  const known = new Set(m.list().map((c) => c.runtimeId ?? c.id));
  const cg = '/sys/fs/cgroup/pids/wrenn-test-agent';
  const pooled = readdirSync(cg, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !known.has(d.name))
    .map((d) => d.name);
  assert.equal(pooled.length, 1, `one pooled capsule's cgroup (${pooled.join(',')})`);
  const dead = pooled[0]!;
  // Kill everything in the pooled capsule from the host (as a crash or the OOM killer would).
  for (const pid of readFileSync(`${cg}/${dead}/cgroup.procs`, 'utf8').trim().split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone with the others
    }
  }
  for (let i = 0; m.warmPoolReady('minimal') > 0 && readdirSync(cg).includes(dead); i++) {
    assert.ok(i < 100, 'the dead pooled capsule left the pool');
    await sleep(20);
  }
  const id = await newCapsule();
  assert.notEqual(m.get(id).runtimeId, dead, 'the dead pooled capsule was handed out');
  await echo(id, 'fresh');
  for (let i = 0; m.warmPoolReady('minimal') < 1; i++) {
    assert.ok(i < 300, 'the pool was refilled');
    await sleep(100);
  }
});

test('after an agent restart, re-adopted capsules are watched', async () => {
  const id = await newCapsule();
  await agent().stop();
  t = await startTestAgent(dataDir);
  const m = agent().agent.manager;
  assert.equal(m.get(id).state, 'running', 're-adopted');
  const since = Date.now();
  process.kill(pidsOf(m, id).envd, 'SIGKILL');
  await waitForError(m, id, since);
  assert.match(m.get(id).error ?? '', /killed by signal 9/);
});
