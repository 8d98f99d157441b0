// E2B's filesystem-only auto-pause through the official e2b SDK against `wrenn up`:
// `lifecycle: { onTimeout: { action: 'pause', keepMemory: false } }` (autoPause with
// autoPauseMemory false, Wrenn's timeout action `hibernate`) must pause the capsule to disk at its
// timeout, not freeze it: the agent does it itself (TIMEOUT_ACTION_HIBERNATE) and pushes the
// hibernated state, and `connect` cold-boots it from its disk (files kept, processes and boot_id new).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import { type LiveSystem, startLive, waitFor } from './e2b-live.js';

describe('e2b SDK filesystem-only auto-pause against wrenn up', () => {
  let sys: LiveSystem;
  const created: string[] = [];

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 0 });
  });
  after(async () => {
    for (const id of created) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
    await sys?.close();
  });

  it('pauses to disk at the timeout; connect boots it again with its files', async () => {
    const sbx = await Sandbox.create('minimal', {
      ...sys.sdk(),
      timeoutMs: 3_000,
      lifecycle: { onTimeout: { action: 'pause', keepMemory: false } },
    });
    created.push(sbx.sandboxId);
    const bootId = (await sbx.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    await sbx.files.write('/home/user/kept.txt', 'kept across the disk pause');
    await sbx.commands.run('sleep 600', { background: true });

    // The native API shows the state as the agent pushed it: hibernated (E2B's API says paused).
    const state = async () => {
      const res = await fetch(`${sys.url}/v1/capsules/${sbx.sandboxId}`, { headers: { 'X-API-Key': sys.adminKey } });
      return ((await res.json()) as { state: string }).state;
    };
    await waitFor('the capsule to be hibernated at its timeout', async () =>
      (await state()) === 'hibernated' ? true : undefined,
    );
    assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state, 'paused');
    assert.equal(await sbx.isRunning(), false);

    const again = await Sandbox.connect(sbx.sandboxId, { ...sys.sdk(), timeoutMs: 60_000 });
    assert.equal(await again.isRunning(), true);
    assert.equal(await again.files.read('/home/user/kept.txt'), 'kept across the disk pause');
    const after = (await again.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    assert.notEqual(after, bootId, 'a cold boot from disk has a new boot_id');
    const sleeping = await again.commands.run('pgrep -x sleep || true');
    assert.equal(sleeping.stdout.trim(), '', 'the processes did not survive the disk pause');
  });
});
