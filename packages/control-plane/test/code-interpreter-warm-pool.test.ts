// `--warm-pool code-interpreter-v1=2` (parsed as `wrenn up` parses the flag) with the published
// @e2b/code-interpreter: creates are pool hits (the agent's record of the capsule carries the
// pooled runtime id, not its own), the first runCode runs in a kernel that was started before the
// create was even sent (its process start time, read in the kernel), and a claimed kernel is fresh:
// tenant A sets `x = 42` and is killed, tenant B (another team) gets another pooled capsule with no
// `x`, and no pooled capsule is ever handed out twice. A create of another shape (a pool miss)
// shows both signals telling a cold boot apart. Network slot 9 (shared with the other
// code-interpreter and e2b base suites; test files run one at a time).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from '@e2b/code-interpreter';
import { parseWarmPool } from '@wrenn/host-agent';
import { e2bKeyOf } from '../src/auth/api-keys.js';
import { type LiveSystem, SHARED_IMAGES, startLive } from './e2b-live.js';
import { newTeamKey } from './native-helpers.js';

const TEMPLATE = 'code-interpreter-v1';

// Epoch ms at which the kernel process running this cell started: now, minus its age from
// /proc (its start in clock ticks since boot against /proc/uptime), to 10 ms.
const KERNEL_START = [
  'import os, time, json',
  "st = open('/proc/self/stat').read().rsplit(')', 1)[1].split()",
  "age = float(open('/proc/uptime').read().split()[0]) - int(st[19]) / os.sysconf('SC_CLK_TCK')",
  'json.dumps({"started_ms": (time.time() - age) * 1000, "two": 1 + 1})',
].join('\n');

describe(`warm pool ${TEMPLATE}=2 with @e2b/code-interpreter`, { timeout: 900_000 }, () => {
  let sys: LiveSystem;
  const sandboxes: Sandbox[] = [];
  const handedOut = new Set<string>();

  const poolReady = async (n: number) => {
    for (let i = 0; i < 3600 && sys.up.agent.manager.warmPoolReady(TEMPLATE) < n; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(sys.up.agent.manager.warmPoolReady(TEMPLATE) >= n, `the pool never held ${n} ready capsules`);
  };

  /** Creates a sandbox for `apiKey` and returns it with the pooled runtime id it was made from. */
  const createFromPool = async (apiKey: string) => {
    const sbx = await Sandbox.create({ ...sys.sdk(apiKey), timeoutMs: 300_000 });
    sandboxes.push(sbx);
    const rec = sys.up.agent.manager.get(sbx.sandboxId);
    assert.ok(
      rec.runtimeId && rec.runtimeId !== sbx.sandboxId,
      `capsule ${sbx.sandboxId} was booted for this create, not taken from the pool`,
    );
    assert.ok(!handedOut.has(rec.runtimeId), `pooled capsule ${rec.runtimeId} was handed out twice`);
    handedOut.add(rec.runtimeId);
    return { sbx, runtimeId: rec.runtimeId };
  };

  before(async () => {
    const warmPool = parseWarmPool(`${TEMPLATE}=2`);
    assert.deepEqual(warmPool, { [TEMPLATE]: 2 });
    // The pool builds the template on first use when the shared cache lacks it (minutes).
    sys = await startLive({ db: 'sqlite', slot: 9, imagesDir: SHARED_IMAGES, warmPool });
    await poolReady(2);
  });
  after(async () => {
    for (const s of sandboxes) await s.kill().catch(() => undefined);
    await sys?.close();
  });

  it('hands out pooled capsules whose kernel was running before the create', async () => {
    await poolReady(2);
    const sentAt = Date.now();
    const { sbx } = await createFromPool(e2bKeyOf(sys.adminKey));
    const first = await sbx.runCode(KERNEL_START);
    assert.equal(first.error, undefined, first.error?.traceback);
    const r = JSON.parse(first.text ?? '{}') as { started_ms: number; two: number };
    assert.equal(r.two, 2);
    assert.ok(
      r.started_ms < sentAt,
      `the kernel started ${Math.round(r.started_ms - sentAt)} ms after the create was sent: it was booted for it`,
    );
    await sbx.kill();
  });

  it('tells a cold boot apart: a create of another shape is booted for it, its kernel after the create', async () => {
    // The control for the two signals above: the pool only holds the default shape (512 MiB).
    const sentAt = Date.now();
    const res = await fetch(`${sys.url}/v1/capsules`, {
      method: 'POST',
      headers: { 'x-api-key': sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ template: TEMPLATE, memory_mb: 1024, timeout_sec: 300 }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    const sbx = await Sandbox.connect(id, sys.sdk());
    sandboxes.push(sbx);
    assert.equal(sys.up.agent.manager.get(id).runtimeId ?? id, id, 'a 1024 MiB capsule came from the 512 MiB pool');
    const r = JSON.parse((await sbx.runCode(KERNEL_START)).text ?? '{}') as { started_ms: number };
    assert.ok(r.started_ms > sentAt, 'the cold capsule reports a kernel older than its create');
    await sbx.kill();
  });

  it("gives a new tenant a fresh kernel: nothing of a killed tenant's state, never a reused capsule", async () => {
    const a = await newTeamKey(sys.cp, 'tenant-a');
    const b = await newTeamKey(sys.cp, 'tenant-b');
    await poolReady(2);
    const tenantA = await createFromPool(e2bKeyOf(a.key));
    assert.equal((await tenantA.sbx.runCode('x = 42\nx')).text, '42');
    await tenantA.sbx.kill();
    // The pool may now hold a replacement booted while A ran; whatever B gets must not be A's.
    const tenantB = await createFromPool(e2bKeyOf(b.key));
    assert.notEqual(tenantB.runtimeId, tenantA.runtimeId);
    const probe = await tenantB.sbx.runCode('x');
    assert.equal(probe.error?.name, 'NameError', `tenant B saw x: ${probe.text}`);
    // A's capsule is gone for good: its network is destroyed, not returned to the pool.
    const nets = (await sys.up.layers.networkManager.list()).map((n) => n.id);
    assert.ok(!nets.includes(tenantA.runtimeId), `the killed capsule's network ${tenantA.runtimeId} is still there`);
    // Several more claims in a row: each a different pooled capsule.
    for (let i = 0; i < 2; i++) {
      await poolReady(1);
      const more = await createFromPool(e2bKeyOf(b.key));
      assert.equal((await more.sbx.runCode('"x" in globals()')).text, 'False');
      await more.sbx.kill();
    }
    await tenantB.sbx.kill();
  });
});
