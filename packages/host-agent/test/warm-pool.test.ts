// The warm pool: a create that matches the pool's shape claims a capsule booted ahead of time, and
// the claimed capsule has the user's id everywhere (hostname, environment, metadata endpoint).
// GetHostInfo reports each pool (ready, target, the shape a create must ask for), a create's answer
// says whether it claimed one, and SetWarmPool changes the sizes while the agent runs (bad names,
// counts and unknown templates refused).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startAgent } from '../src/agent.js';
import { createAgentClient } from '../src/auth/client.js';
import { createLocalLayers } from '../src/local-providers.js';
import { leftovers, newDataDir, sleep, TEST_NET, teardown, text } from './agent-helpers.js';

const dataDir = newDataDir();
const layers = await createLocalLayers(dataDir, { network: TEST_NET, cgroupParent: 'wrenn-test-agent' });
const agent = await startAgent({
  ...layers,
  dataDir,
  listen: { host: '127.0.0.1', port: 0 },
  warmPool: { minimal: 1 },
});
const client = createAgentClient(agent.url, agent.secret);
const ids: string[] = [];

after(async () => {
  await teardown(
    {
      dataDir,
      agent,
      layers,
      client,
      stop: async () => {
        await agent.close();
        await layers.close();
      },
    },
    dataDir,
  );
  const left = leftovers(dataDir, ids);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

async function poolReady() {
  // The pool boots in the background.
  for (let i = 0; i < 400; i++) {
    if (agent.manager.warmPoolReady('minimal') >= 1) return;
    await sleep(50);
  }
  assert.fail('the warm pool never booted a capsule');
}

test('a pooled capsule is claimed with the requested identity and the pool refills', async () => {
  await poolReady();
  const pooledNets = (await layers.networkManager.list()).map((n) => n.id);
  // The control plane names its capsules: the pooled one is renamed to that id.
  const wanted = `cl-${Date.now().toString(36)}test`;
  const { capsule } = await client.createCapsule({
    id: wanted,
    template: 'minimal',
    envs: { GREETING: 'hi' },
    metadata: { team: 'a' },
  });
  assert.ok(capsule);
  ids.push(capsule.id);
  const rec = agent.manager.get(capsule.id);
  assert.equal(capsule.id, wanted);
  assert.ok(rec.runtimeId && pooledNets.includes(rec.runtimeId), 'the capsule came from the pool');
  assert.equal(capsule.fromWarmPool, true, 'the answer says it came from the pool');
  const r = await client.exec({
    capsuleId: capsule.id,
    cmd: '/bin/sh',
    args: [
      '-c',
      'hostname; echo $WRENN_SANDBOX_ID $GREETING; wget -qO- http://169.254.169.254/latest/WRENN_SANDBOX_ID',
    ],
  });
  assert.equal(r.exitCode, 0, text(r.stderr));
  assert.equal(text(r.stdout), `${capsule.id}\n${capsule.id} hi\n${capsule.id}`);
  // The pool boots a replacement behind the claim.
  for (let i = 0; i < 400 && agent.manager.warmPoolReady('minimal') < 1; i++) await sleep(50);
  assert.equal(agent.manager.warmPoolReady('minimal'), 1);
  await client.destroyCapsule({ id: capsule.id });
});

test('with no id asked for, a pooled capsule keeps the id it booted under', async () => {
  await poolReady();
  const { capsule } = await client.createCapsule({ template: 'minimal' });
  assert.ok(capsule);
  ids.push(capsule.id);
  assert.equal(agent.manager.get(capsule.id).runtimeId, capsule.id);
  const r = await client.exec({
    capsuleId: capsule.id,
    cmd: '/bin/sh',
    args: ['-c', 'hostname; echo $WRENN_SANDBOX_ID'],
  });
  assert.equal(text(r.stdout), `${capsule.id}\n${capsule.id}\n`);
  await client.destroyCapsule({ id: capsule.id });
});

test('a create with another shape does not use the pool', async () => {
  const { capsule } = await client.createCapsule({ template: 'minimal', vcpus: 2, memoryMb: 256 });
  assert.ok(capsule);
  ids.push(capsule.id);
  assert.equal(agent.manager.get(capsule.id).runtimeId, undefined);
  assert.equal(capsule.fromWarmPool, false);
  await client.destroyCapsule({ id: capsule.id });
});

const poolsOf = async () =>
  (await client.getHostInfo({})).warmPools.map(({ $typeName: _t, $unknown: _u, ...fields }) => fields);

test('GetHostInfo reports the pool: ready, target and the shape a create must ask for', async () => {
  await poolReady();
  assert.deepEqual(await poolsOf(), [
    { template: 'minimal', ready: 1, target: 1, runtime: layers.defaultRuntime, vcpus: 1, memoryMb: 512 },
  ]);
});

test('SetWarmPool resizes the pool while the agent runs; bad sizes and unknown templates are refused', async () => {
  await poolReady();
  const grown = await client.setWarmPool({ sizes: { minimal: 2 } });
  assert.equal(grown.warmPools[0]?.target, 2);
  for (let i = 0; i < 400 && agent.manager.warmPoolReady('minimal') < 2; i++) await sleep(50);
  assert.equal(agent.manager.warmPoolReady('minimal'), 2, 'a second capsule booted');
  // Down to none: the ready ones go at once, and the template is no longer reported.
  const none = await client.setWarmPool({ sizes: {} });
  assert.deepEqual(none.warmPools, []);
  assert.equal(agent.manager.warmPoolReady('minimal'), 0);
  assert.deepEqual(await poolsOf(), []);
  assert.deepEqual(agent.manager.warmPoolTargets(), {});

  await assert.rejects(client.setWarmPool({ sizes: { 'no-such-template': 1 } }), /not found/i);
  await assert.rejects(client.setWarmPool({ sizes: { 'Bad Name': 1 } }), /template name "Bad Name" is invalid/);
  await assert.rejects(client.setWarmPool({ sizes: { minimal: 1000 } }), /0 to 999/);
  const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`t${i}`, 0]));
  await assert.rejects(client.setWarmPool({ sizes: many }), /at most 64 templates/);
  assert.deepEqual(agent.manager.warmPoolTargets(), {}, 'a refused call changed nothing');

  // Back to one, as the other tests expect.
  await client.setWarmPool({ sizes: { minimal: 1 } });
  await poolReady();
});
