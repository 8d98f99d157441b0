// The official e2b SDK's Sandbox.fork() on a QEMU capsule of `wrenn up` (network slot 14, after
// fork-live): the VM made through the native API (E2B's API has no runtime field), then forked,
// used and killed through the e2b SDK alone. The forks restore the source's memory: a counter the
// source started keeps counting in them; their envd answers the SDK with each fork's own token
// through the sandbox proxy. Software emulation here (no usable KVM), so this takes a few minutes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import { hasQemu, type LiveSystem, startLive } from './e2b-live.js';

const SLOT = 14;

describe('e2b SDK fork of a QEMU capsule against wrenn up', { skip: hasQemu ? false : 'no qemu-system-x86_64' }, () => {
  let sys: LiveSystem;
  const made: string[] = [];
  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT });
  });
  after(async () => {
    for (const id of made) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
    await sys?.close();
  });

  it('Sandbox.fork restores memory: processes keep running in the forks, files and tokens are their own', {
    timeout: 900_000,
  }, async () => {
    const created = await fetch(`${sys.url}/v1/capsules`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sys.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ template: 'minimal', runtime: 'qemu', memory_mb: 256, timeout_sec: 900 }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { id } = (await created.json()) as { id: string };
    made.push(id);
    const src = await Sandbox.connect(id, sys.sdk());
    await src.files.write('/tmp/state', 'before-fork');
    await src.commands.run(
      '(i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) </dev/null >/dev/null 2>&1 &',
    );
    await new Promise((r) => setTimeout(r, 1500));

    const t0 = Date.now();
    const forks = await Sandbox.fork(id, { ...sys.sdk(), count: 2, timeoutMs: 600_000 });
    console.log(`# e2b Sandbox.fork of a QEMU capsule, count 2 (TCG): ${Date.now() - t0} ms`);
    const [a, b] = forks.map((f) => {
      if (!(f instanceof Sandbox)) throw f;
      made.push(f.sandboxId);
      return f;
    }) as [Sandbox, Sandbox];
    assert.ok(await src.isRunning(), 'the source runs on');
    const count = async (s: Sandbox) => Number((await s.commands.run('cat /tmp/count')).stdout.trim());
    for (const s of [src, a, b]) {
      assert.equal(await s.files.read('/tmp/state'), 'before-fork');
      const c1 = await count(s);
      await new Promise((r) => setTimeout(r, 1500));
      const c2 = await count(s);
      assert.ok(c2 > c1, `${s.sandboxId}: the counter from before the fork still counts (${c1} -> ${c2})`);
    }
    await a.files.write('/tmp/mine', 'a');
    assert.equal(await src.files.exists('/tmp/mine'), false);
    assert.equal(await b.files.exists('/tmp/mine'), false);
    assert.equal((await a.commands.run('echo $E2B_SANDBOX_ID')).stdout.trim(), a.sandboxId);
    for (const s of [a, b]) await s.kill();
  });
});
