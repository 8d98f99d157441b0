// Fork against a live `wrenn up` (namespace runtime, network slot 14): the official e2b SDK's
// Sandbox.fork() and sandbox.fork() unchanged, and the native POST /v1/capsules/:id/fork. A fork
// sees the source's files; writes in a fork show neither in the source nor in a sibling; the
// source keeps running (a process it started before the fork too), while the forks' processes
// started afresh (said as processes_restarted); bad input is a 400, an unknown source 404, a
// paused one 409, each in its API's error shape.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox, SandboxNotFoundError } from 'e2b';
import { type LiveSystem, startLive, waitFor } from './e2b-live.js';

const SLOT = 14;

describe('fork against wrenn up (namespace runtime)', () => {
  let sys: LiveSystem;
  const made: string[] = [];
  const track = <T extends { sandboxId: string }>(s: T): T => {
    made.push(s.sandboxId);
    return s;
  };
  const run = async (s: Sandbox, cmd: string) => (await s.commands.run(cmd)).stdout;
  /** Processes named `sleep` in the capsule (busybox has no pgrep -c). */
  const SLEEPERS = 'cat /proc/[0-9]*/comm 2>/dev/null | grep -cx sleep || true';

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT });
  });
  after(async () => {
    for (const id of made) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
    // Forks are left too: destroying every capsule also sweeps the agent's fork templates.
    await sys?.close();
  });

  it('e2b SDK: Sandbox.fork() makes N sandboxes with the source files; writes stay apart; the source runs on', async () => {
    const src = track(await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 }));
    await src.files.write('/home/user/shared.txt', 'from the source\n');
    await src.commands.run('mkdir -p /tmp/deep/er && echo root-owned > /tmp/deep/er/x', { user: 'root' });
    // A process of the source: it keeps running through the fork, and is not in the forks.
    await src.commands.run('sleep 600', { background: true });
    const sleepers = await run(src, SLEEPERS);
    assert.equal(sleepers.trim(), '1');

    const t0 = Date.now();
    const forks = await Sandbox.fork(src.sandboxId, { ...sys.sdk(), count: 2, timeoutMs: 120_000 });
    console.log(`# Sandbox.fork count 2: ${Date.now() - t0} ms`);
    assert.equal(forks.length, 2);
    const [a, b] = forks.map((f) => {
      if (!(f instanceof Sandbox)) throw f;
      return track(f);
    }) as [Sandbox, Sandbox];
    assert.notEqual(a.sandboxId, b.sandboxId);
    assert.notEqual(a.sandboxId, src.sandboxId);

    for (const f of [a, b]) {
      assert.equal(await f.files.read('/home/user/shared.txt'), 'from the source\n', 'a fork sees the source file');
      assert.equal((await run(f, 'cat /tmp/deep/er/x')).trim(), 'root-owned');
      assert.equal((await run(f, 'stat -c %U /tmp/deep/er/x')).trim(), 'root', 'ownership is copied');
      assert.equal((await run(f, 'hostname')).trim(), f.sandboxId, 'each fork has its own host name');
      assert.equal((await run(f, SLEEPERS)).trim(), '0', "the source's processes are not in a fork");
      assert.equal((await run(f, 'echo $E2B_SANDBOX_ID')).trim(), f.sandboxId);
    }
    await a.files.write('/home/user/only-a.txt', 'a\n');
    await b.files.write('/home/user/shared.txt', 'b changed it\n');
    await src.files.write('/home/user/after-fork.txt', 'later\n');

    assert.equal(await src.files.exists('/home/user/only-a.txt'), false, "a fork's write is not in the source");
    assert.equal(await b.files.exists('/home/user/only-a.txt'), false, "a fork's write is not in its sibling");
    assert.equal(await src.files.read('/home/user/shared.txt'), 'from the source\n');
    assert.equal(await a.files.read('/home/user/shared.txt'), 'from the source\n');
    assert.equal(await a.files.exists('/home/user/after-fork.txt'), false, 'later source writes stay in the source');

    assert.ok(await src.isRunning(), 'the source still runs');
    assert.equal((await Sandbox.getInfo(src.sandboxId, sys.sdk())).state, 'running');
    assert.equal((await run(src, SLEEPERS)).trim(), '1', "the source's process survived the fork");
    for (const f of [a, b]) {
      const info = await Sandbox.getInfo(f.sandboxId, sys.sdk());
      assert.equal(info.state, 'running');
      assert.equal(info.templateId, 'minimal');
      // timeoutMs 120 s: the fork ends well before the source's 300 s.
      assert.ok(info.endAt.getTime() - Date.now() <= 121_000, `fork ends in ~120 s, not ${info.endAt.toISOString()}`);
    }

    // The instance method, default count (1), and a fork of a fork.
    const [c] = await a.fork({ timeoutMs: 60_000 });
    if (!(c instanceof Sandbox)) throw c;
    track(c);
    assert.equal(await c.files.read('/home/user/only-a.txt'), 'a\n', 'a fork of a fork sees its parent fork');
    assert.equal(await c.files.read('/home/user/shared.txt'), 'from the source\n');
    await Sandbox.kill(a.sandboxId, sys.sdk());
    assert.equal(await c.files.read('/home/user/only-a.txt'), 'a\n', 'a fork outlives its source');
  });

  it('e2b API: bad count or timeout is 400, an unknown source 404, a paused one 409, in E2B shape', async () => {
    const post = (id: string, body: unknown) =>
      fetch(`${sys.url}/sandboxes/${id}/fork`, {
        method: 'POST',
        headers: { 'X-API-KEY': sys.adminKey, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const src = track(await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 }));
    for (const body of [{ count: 0 }, { count: 17 }, { count: 1.5 }, { timeout: -1 }, { count: 'two' }]) {
      const r = await post(src.sandboxId, body);
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}`);
      const e = (await r.json()) as { code: number; message: string };
      assert.equal(e.code, 400);
      assert.ok(e.message.length > 0);
    }
    const unknown = await post('cl-doesnotexist0000', {});
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: number }).code, 404);
    await assert.rejects(Sandbox.fork('cl-doesnotexist0000', sys.sdk()), SandboxNotFoundError);

    assert.equal(await Sandbox.pause(src.sandboxId, sys.sdk()), true);
    const paused = await post(src.sandboxId, { count: 1 });
    assert.equal(paused.status, 409);
    const pe = (await paused.json()) as { code: number; message: string };
    assert.equal(pe.code, 409);
    assert.match(pe.message, /paused/);
    await Sandbox.kill(src.sandboxId, sys.sdk());
    const killed = await post(src.sandboxId, {});
    assert.equal(killed.status, 404, 'a killed source is not found');
  });

  it('native API: POST /v1/capsules/:id/fork answers the forks and processes_restarted', async () => {
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${sys.url}/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${sys.adminKey}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    const created = await api('POST', '/capsules', {
      timeout_sec: 300,
      metadata: { who: 'native' },
      env: { E1: 'v1' },
    });
    assert.equal(created.status, 201);
    const src = (await created.json()) as { id: string };
    made.push(src.id);
    const exec = async (id: string, cmd: string) => {
      const r = await api('POST', `/capsules/${id}/exec`, { cmd: '/bin/sh', args: ['-c', cmd] });
      assert.equal(r.status, 200, await r.clone().text());
      return ((await r.json()) as { stdout: string }).stdout;
    };
    await exec(src.id, 'echo native > /home/user/n.txt');

    const r = await api('POST', `/capsules/${src.id}/fork`, { count: 3, timeout_sec: 90 });
    assert.equal(r.status, 201, await r.clone().text());
    const body = (await r.json()) as {
      source_id: string;
      processes_restarted: boolean;
      forks: { capsule?: { id: string; state: string; metadata: Record<string, string>; timeout_sec: number } }[];
    };
    assert.equal(body.source_id, src.id);
    assert.equal(body.processes_restarted, true, 'namespace forks restart their processes');
    assert.equal(body.forks.length, 3);
    const ids = body.forks.map((f) => {
      assert.ok(f.capsule, JSON.stringify(f));
      assert.equal(f.capsule.state, 'running');
      assert.deepEqual(f.capsule.metadata, { who: 'native' }, "the source's metadata");
      assert.equal(f.capsule.timeout_sec, 90);
      made.push(f.capsule.id);
      return f.capsule.id;
    });
    assert.equal(new Set(ids).size, 3);
    for (const id of ids) {
      assert.equal((await exec(id, 'cat /home/user/n.txt; echo $E1')).trim(), 'native\nv1');
    }
    const listed = (await (await api('GET', '/capsules?state=running')).json()) as { capsules: { id: string }[] };
    for (const id of [src.id, ...ids])
      assert.ok(
        listed.capsules.some((c) => c.id === id),
        `${id} listed`,
      );
    const events = (await (await api('GET', `/capsules/${ids[0]}/events`)).json()) as { events: { kind: string }[] };
    assert.ok(
      events.events.some((e) => e.kind === 'capsule.forked'),
      JSON.stringify(events.events.map((e) => e.kind)),
    );

    const bad = await api('POST', `/capsules/${src.id}/fork`, { count: 0 });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'invalid_argument');
    const extra = await api('POST', `/capsules/${src.id}/fork`, { count: 1, bogus: true });
    assert.equal(extra.status, 400, 'unknown fields are refused');
    const missing = await api('POST', '/capsules/cl-doesnotexist0000/fork', {});
    assert.equal(missing.status, 404);
    assert.equal((await api('POST', `/capsules/${src.id}/pause`, {})).status, 200);
    const paused = await api('POST', `/capsules/${src.id}/fork`, {});
    assert.equal(paused.status, 409);
    assert.equal(((await paused.json()) as { error: { code: string } }).error.code, 'conflict');
  });

  it("the agent's fork templates go with the last capsule that uses them", async () => {
    const forkTemplates = async () =>
      (await sys.up.layers.templateStore.listTemplates()).filter((t) => t.name.startsWith('fork-')).map((t) => t.name);
    assert.ok((await forkTemplates()).length > 0, 'the earlier forks still use their templates');
    for (const id of made) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
    await waitFor('no fork template left', async () => ((await forkTemplates()).length === 0 ? true : undefined));
  });
});

describe("fork on a full host: each fork passes the host's capacity check as a create does", () => {
  let sys: LiveSystem;
  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT, capacity: { maxCapsules: 3 } });
  });
  after(async () => {
    await sys?.close();
  });

  it('with room for 2 more capsules, a fork of 4 starts 2 and reports host_full (503) for the others', async () => {
    const src = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000 });
    const results = await Sandbox.fork(src.sandboxId, { ...sys.sdk(), count: 4, timeoutMs: 120_000 });
    assert.equal(results.length, 4);
    const started = results.filter((r): r is Sandbox => r instanceof Sandbox);
    const refused = results.filter((r) => !(r instanceof Sandbox)) as Error[];
    assert.equal(started.length, 2, `started ${started.length}: ${refused.map((e) => e.message).join('; ')}`);
    for (const e of refused) assert.match(e.message, /host full/i, e.message);
    for (const f of started) assert.equal((await f.commands.run('echo ok')).stdout, 'ok\n');
    const listed = await Sandbox.list(sys.sdk()).nextItems();
    assert.equal(listed.length, 3, 'the refused forks are not listed');

    // The raw answer: one entry per fork, E2B's {code, message} for the refused ones.
    for (const f of started) await Sandbox.kill(f.sandboxId, sys.sdk());
    const r = await fetch(`${sys.url}/sandboxes/${src.sandboxId}/fork`, {
      method: 'POST',
      headers: { 'X-API-KEY': sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ count: 3, timeout: 60 }),
    });
    assert.equal(r.status, 201);
    const body = (await r.json()) as { sandbox?: { sandboxID: string }; error?: { code: number; message: string } }[];
    assert.equal(body.filter((x) => x.sandbox).length, 2);
    const errors = body.filter((x) => x.error).map((x) => x.error);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 503);
    for (const x of body) if (x.sandbox) await Sandbox.kill(x.sandbox.sandboxID, sys.sdk());
    await Sandbox.kill(src.sandboxId, sys.sdk());
  });
});
