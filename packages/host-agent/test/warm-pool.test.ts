// The warm pool: a create that matches the pool's shape claims a capsule booted ahead of time, and
// the claimed capsule has the user's id everywhere (hostname, environment, metadata endpoint).

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
  await client.destroyCapsule({ id: capsule.id });
});
