// Fork on the QEMU runtime through the agent's Connect service: the source VM is stopped for one
// memory snapshot and continues; each fork restores that memory, so a process counting in the
// source before the fork is still counting in every fork (processes_restarted false). Writes after
// the fork stay in the VM that made them; each fork's envd takes the fork's own access token.
// Software emulation here (TCG: no usable KVM on this machine), so this file takes minutes.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CapsuleState } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { hasQemu, leftovers, newDataDir, startTestAgent, type TestAgent, teardown, text } from './agent-helpers.js';

const dataDir = newDataDir();
let t: TestAgent | undefined;
const ids: string[] = [];

after(async () => {
  await teardown(t, dataDir);
  const left = leftovers(dataDir, ids);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

test('qemu fork: one memory snapshot, N restores with the running processes; the source continues', {
  skip: hasQemu ? false : 'qemu-system-x86_64 is not installed',
  timeout: 900_000,
}, async () => {
  t = await startTestAgent(dataDir);
  const a = t.client;
  const sh = async (id: string, cmd: string) => {
    const r = await a.exec({ capsuleId: id, cmd: '/bin/sh', args: ['-c', cmd] });
    assert.equal(r.exitCode, 0, `${cmd}: ${text(r.stderr)}`);
    return text(r.stdout).trim();
  };
  const { capsule: src } = await a.createCapsule({
    template: 'minimal',
    runtime: 'qemu',
    memoryMb: 256,
    timeoutSec: 900,
    envdAccessToken: 'source-token-0123456789',
  });
  assert.ok(src);
  ids.push(src.id);
  await sh(src.id, 'echo before-fork > /tmp/state');
  // A process of the source that lives in memory only: it counts into a file.
  await sh(src.id, '(i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) </dev/null >/dev/null 2>&1 &');
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(Number(await sh(src.id, 'cat /tmp/count')) > 0, 'the counter runs in the source');

  const t0 = Date.now();
  const res = await a.forkCapsule({
    sourceId: src.id,
    forks: [
      { id: 'cl-qfork0000000001', timeoutSec: 600, envdAccessToken: 'fork-token-one-0123456789' },
      { id: 'cl-qfork0000000002', timeoutSec: 600, envdAccessToken: 'fork-token-two-0123456789' },
    ],
  });
  process.stdout.write(`# qemu fork of 2 (TCG): ${Date.now() - t0} ms\n`);
  assert.equal(res.processesRestarted, false, 'VM forks keep their processes');
  const forkIds = res.forks.map((f, i) => {
    assert.ok(f.capsule, `fork ${i}: ${f.errorKind} ${f.error}`);
    ids.push(f.capsule.id);
    assert.equal(f.capsule.state, CapsuleState.RUNNING);
    assert.equal(f.capsule.runtime, 'qemu');
    return f.capsule.id;
  });
  assert.deepEqual(forkIds, ['cl-qfork0000000001', 'cl-qfork0000000002']);
  assert.equal((await a.getCapsule({ id: src.id })).capsule?.state, CapsuleState.RUNNING, 'the source runs on');

  for (const id of [src.id, ...forkIds]) {
    assert.equal(await sh(id, 'cat /tmp/state'), 'before-fork');
    const c1 = Number(await sh(id, 'cat /tmp/count'));
    await new Promise((r) => setTimeout(r, 1500));
    const c2 = Number(await sh(id, 'cat /tmp/count'));
    assert.ok(c2 > c1, `${id}: the counter started before the fork still counts (${c1} -> ${c2})`);
  }
  await sh(forkIds[0] as string, 'echo only-in-fork-1 > /tmp/mine');
  await sh(src.id, 'echo source-after > /tmp/state');
  assert.equal(await sh(src.id, 'cat /tmp/mine 2>/dev/null || echo none'), 'none');
  assert.equal(await sh(forkIds[1] as string, 'cat /tmp/mine 2>/dev/null || echo none'), 'none');
  assert.equal(await sh(forkIds[0] as string, 'cat /tmp/state'), 'before-fork');

  // The fork's envd took the fork's token (/init presented the source's): the source's token is refused there.
  const fork = t.agent.manager.get(forkIds[0] as string);
  const byOld = await fetch(`http://${fork.address}:49983/envs`, {
    headers: { 'X-Access-Token': 'source-token-0123456789' },
  });
  assert.equal(byOld.status, 401, "the source's token does not open a fork's envd");
  const byOwn = await fetch(`http://${fork.address}:49983/envs`, {
    headers: { 'X-Access-Token': 'fork-token-one-0123456789' },
  });
  assert.equal(byOwn.status, 200);
  const envs = (await byOwn.json()) as Record<string, string>;
  assert.equal(envs.WRENN_SANDBOX_ID, forkIds[0], "the fork's envd knows its own id");

  for (const id of [...forkIds, src.id]) await a.destroyCapsule({ id });
  const forkTemplates = (await t.layers.templateStore.listTemplates()).filter((x) => x.name.startsWith('fork-'));
  for (let i = 0; i < 50 && forkTemplates.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    forkTemplates.splice(
      0,
      forkTemplates.length,
      ...(await t.layers.templateStore.listTemplates()).filter((x) => x.name.startsWith('fork-')),
    );
  }
  assert.deepEqual(
    forkTemplates.map((x) => x.name),
    [],
    'the fork template went with its last capsule',
  );
  process.stdout.write('# qemu ran in software emulation (TCG): this machine has no usable KVM\n');
});
