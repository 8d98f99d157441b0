// The agent drives the QEMU runtime like any other: a `minimal` VM capsule through the Connect
// service, exec over envd on the TAP, pause as a memory snapshot (VMM gone) and resume.
// Software emulation here: /dev/kvm cannot run a vCPU on this machine (KVM paths are verified only on KVM hosts).

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

test('a VM capsule on the qemu runtime: create, exec, pause to disk, resume, destroy', {
  skip: hasQemu ? false : 'qemu-system-x86_64 is not installed',
  timeout: 600_000,
}, async () => {
  t = await startTestAgent(dataDir);
  const a = t.client;
  const info = await a.getHostInfo({});
  assert.ok(info.runtimes.includes('qemu'), `the agent offers qemu (has ${info.runtimes.join(', ')})`);
  const { capsule } = await a.createCapsule({ template: 'minimal', runtime: 'qemu', timeoutSec: 600 });
  assert.ok(capsule);
  ids.push(capsule.id);
  assert.equal(capsule.runtime, 'qemu');
  const r = await a.exec({
    capsuleId: capsule.id,
    cmd: '/bin/sh',
    args: ['-c', 'echo hello-vm; cat /proc/cpuinfo | grep -c processor'],
  });
  assert.equal(r.exitCode, 0, text(r.stderr));
  assert.match(text(r.stdout), /^hello-vm\n1\n$/);
  await a.exec({ capsuleId: capsule.id, cmd: '/bin/sh', args: ['-c', 'echo kept > /tmp/state'] });
  const p = await a.pauseCapsule({ id: capsule.id });
  assert.equal(p.capsule?.state, CapsuleState.PAUSED);
  assert.match(p.capsule?.pauseKeeps ?? '', /memory/);
  const res = await a.resumeCapsule({ id: capsule.id });
  assert.equal(res.capsule?.state, CapsuleState.RUNNING);
  const after = await a.exec({ capsuleId: capsule.id, cmd: 'cat', args: ['/tmp/state'] });
  assert.equal(text(after.stdout), 'kept\n');
  // Liveness: the resumed VM's QEMU is watched (a pidfd, no polling); killed from outside, the
  // capsule is `error` within 2 s with the reason, and is still destroyed cleanly.
  const vmmPid = (t.agent.manager.get(capsule.id).handle?.state as { pid: number } | undefined)?.pid ?? 0;
  assert.ok(vmmPid > 0, 'the resumed VM has a QEMU process');
  const since = Date.now();
  process.kill(vmmPid, 'SIGKILL');
  for (;;) {
    const got = (await a.getCapsule({ id: capsule.id })).capsule;
    if (got?.state === CapsuleState.ERROR) {
      assert.match(got.error, new RegExp(`QEMU \\(pid ${vmmPid}\\) exited`), `the reason names QEMU: ${got.error}`);
      break;
    }
    assert.ok(Date.now() - since <= 2000, `capsule still ${got?.state} ${Date.now() - since} ms after QEMU was killed`);
    await new Promise((r) => setTimeout(r, 20));
  }
  process.stdout.write(`# QEMU killed from outside: agent reported error after ${Date.now() - since} ms\n`);
  await a.destroyCapsule({ id: capsule.id });
  process.stdout.write('# qemu ran in software emulation (TCG): this machine has no usable KVM\n');
});
