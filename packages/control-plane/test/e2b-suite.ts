// The official e2b SDK against a live `wrenn up`: everything a user of E2B does, unchanged, with
// E2B_API_URL / E2B_SANDBOX_URL pointed at the control plane and a Wrenn key as the API key.
// Shared by the SQLite and PostgreSQL test files.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NotFoundError, Sandbox, SandboxNotFoundError } from 'e2b';
import { createApiKey } from '../src/auth/api-keys.js';
import { createTeam } from '../src/db/repositories/teams.js';
import { type DbKind, getViaHost, type LiveSystem, startLive, stopPostgres, waitFor } from './e2b-live.js';

export function defineE2bSuite(db: DbKind, slot: number): void {
  describe(`e2b SDK against wrenn up (${db})`, () => {
    let sys: LiveSystem;
    let otherKey: string;
    const created: string[] = [];
    const make = async (opts: Parameters<typeof Sandbox.create>[1] = {}) => {
      const s = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 300_000, ...opts });
      created.push(s.sandboxId);
      return s;
    };

    before(async () => {
      sys = await startLive({ db, slot });
      const team = await createTeam(sys.cp.ctx.database.db, { name: 'other' });
      otherKey = (await createApiKey(sys.cp.ctx.database.db, { teamId: team.id, name: 'other' })).key;
    });
    after(async () => {
      try {
        for (const id of created) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
        await sys?.close();
      } finally {
        if (db === 'postgres') await stopPostgres();
      }
    });

    it('creates a sandbox, runs commands, reads and writes files, reports its info', async () => {
      const sbx = await make({ metadata: { suite: 'e2b', n: '1' }, envs: { GREETING: 'hi from env' } });
      assert.match(sbx.sandboxId, /^cl-[0-9a-z]+$/);
      const r = await sbx.commands
        .run('echo "$GREETING"; id -un; echo err >&2; exit 3')
        .catch((e: { result?: unknown }) => e.result ?? e);
      assert.equal((r as { exitCode: number }).exitCode, 3);
      assert.equal((r as { stdout: string }).stdout, 'hi from env\nuser\n');
      assert.equal((r as { stderr: string }).stderr, 'err\n');

      await sbx.files.write('/home/user/notes.txt', 'line one\nline two\n');
      assert.equal(await sbx.files.read('/home/user/notes.txt'), 'line one\nline two\n');
      const entries = await sbx.files.list('/home/user');
      assert.ok(
        entries.some((e) => e.name === 'notes.txt'),
        `notes.txt listed in ${JSON.stringify(entries.map((e) => e.name))}`,
      );
      const cat = await sbx.commands.run('cat /home/user/notes.txt | wc -l');
      assert.equal(cat.stdout.trim(), '2');

      const info = await Sandbox.getInfo(sbx.sandboxId, sys.sdk());
      assert.equal(info.sandboxId, sbx.sandboxId);
      assert.equal(info.templateId, 'minimal');
      assert.equal(info.state, 'running');
      assert.deepEqual(info.metadata, { suite: 'e2b', n: '1' });
      assert.ok(info.endAt.getTime() > Date.now(), 'endAt lies in the future');
      assert.ok(await sbx.isRunning());
    });

    it('runs a PTY: input goes in, the shell answers', async () => {
      const sbx = await make();
      let out = '';
      const term = await sbx.pty.create({
        cols: 80,
        rows: 24,
        onData: (d) => void (out += Buffer.from(d).toString('utf8')),
      });
      await sbx.pty.sendInput(term.pid, new TextEncoder().encode('echo pty-$((6*7))-ok\n'));
      await waitFor(
        'the PTY to echo the computed marker',
        async () => (out.includes('pty-42-ok') ? true : undefined),
        20_000,
      );
      await sbx.pty.resize(term.pid, { cols: 100, rows: 30 });
      await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'));
      await waitFor('stty to report the new size', async () => (out.includes('30 100') ? true : undefined), 20_000);
      assert.ok(await sbx.pty.kill(term.pid));
    });

    it('reaches a server started inside through the proxy (getHost host name and E2b headers)', async () => {
      const sbx = await make();
      await sbx.files.write('/tmp/www/index.html', `<p>served by ${sbx.sandboxId}</p>`);
      await sbx.commands.run('busybox httpd -f -p 8080 -h /tmp/www', { background: true });
      const host = sbx.getHost(8080);
      assert.equal(host, `8080-${sbx.sandboxId}.wrenn.test`);
      const viaHost = await waitFor('httpd to answer through the proxy', async () => {
        const r = await getViaHost(sys.url, host, '/index.html');
        return r.status === 200 ? r : undefined;
      });
      assert.equal(viaHost.body, `<p>served by ${sbx.sandboxId}</p>`);
      const viaHeaders = await fetch(`${sys.url}/index.html`, {
        headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8080' },
      });
      assert.equal(viaHeaders.status, 200);
      assert.equal(await viaHeaders.text(), `<p>served by ${sbx.sandboxId}</p>`);
    });

    it('autoResume: a paused sandbox wakes on its next request through the proxy, which waits for it', async () => {
      const sbx = await make({ lifecycle: { onTimeout: 'pause', autoResume: true } });
      await sbx.files.write('/tmp/keep.txt', 'kept across auto-resume');
      assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).lifecycle?.autoResume, true);
      assert.equal(await Sandbox.pause(sbx.sandboxId, sys.sdk()), true);
      assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state, 'paused');
      // envd traffic through the proxy: held while the capsule resumes, then answered.
      const r = await sbx.commands.run('cat /tmp/keep.txt');
      assert.equal(r.stdout, 'kept across auto-resume');
      assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state, 'running');
      // Several requests at once while asleep: one resume, every request answered.
      assert.equal(await Sandbox.pause(sbx.sandboxId, sys.sdk()), true);
      const outs = await Promise.all([1, 2, 3].map((i) => sbx.commands.run(`echo ${i}`)));
      assert.deepEqual(
        outs.map((o) => o.stdout.trim()),
        ['1', '2', '3'],
      );
      // Without autoResume the proxy still refuses a paused sandbox (the test below).
    });

    it('pauses and resumes (connect) with processes, memory and files kept', async () => {
      const sbx = await make();
      await sbx.files.write('/tmp/keep.txt', 'kept across pause');
      // A process holding state only in memory: it counts, and reports its count on request.
      await sbx.commands.run(
        "sh -c 'n=0; while true; do n=$((n+1)); echo $n > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.2; done' & echo $! > /tmp/counter.pid",
        { background: false },
      );
      const pid = (await sbx.commands.run('cat /tmp/counter.pid')).stdout.trim();
      assert.match(pid, /^\d+$/);

      assert.equal(await Sandbox.pause(sbx.sandboxId, sys.sdk()), true);
      assert.equal(
        await Sandbox.pause(sbx.sandboxId, sys.sdk()),
        false,
        'pausing a paused sandbox reports false (409)',
      );
      const paused = await Sandbox.getInfo(sbx.sandboxId, sys.sdk());
      assert.equal(paused.state, 'paused');
      const pausedList = await Sandbox.list({ ...sys.sdk(), query: { state: ['paused'] } }).nextItems();
      assert.ok(
        pausedList.some((s) => s.sandboxId === sbx.sandboxId),
        'listed among paused sandboxes',
      );
      // The proxy refuses traffic to a paused capsule rather than hanging, in E2B's shape, and the
      // SDK reads that as "not running".
      const refused = await fetch(`${sys.url}/`, {
        headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' },
      });
      assert.equal(refused.status, 502);
      const body = (await refused.json()) as { code: number; message: string; sandboxId: string };
      assert.deepEqual(
        { code: body.code, message: body.message, sandboxId: body.sandboxId },
        { code: 502, message: 'The sandbox was not found', sandboxId: sbx.sandboxId },
      );
      assert.equal(await sbx.isRunning(), false, 'isRunning() of a paused sandbox');

      const again = await Sandbox.connect(sbx.sandboxId, { ...sys.sdk(), timeoutMs: 300_000 });
      assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state, 'running');
      assert.equal(await again.files.read('/tmp/keep.txt'), 'kept across pause');
      const alive = await again.commands.run(`kill -0 ${pid} && echo alive`);
      assert.equal(alive.stdout.trim(), 'alive', 'the counting process survived the pause');
      const before = Number((await again.commands.run('cat /tmp/count')).stdout.trim());
      await waitFor('the counter to keep counting after resume', async () => {
        const now = Number((await again.commands.run('cat /tmp/count')).stdout.trim());
        return now > before ? now : undefined;
      });
      // Connecting to a running sandbox leaves it running.
      await Sandbox.connect(sbx.sandboxId, sys.sdk());
      assert.equal((await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state, 'running');
    });

    it('sets the timeout from now, longer and shorter', async () => {
      const sbx = await make({ timeoutMs: 60_000 });
      const first = (await sbx.getInfo()).endAt.getTime();
      await sbx.setTimeout(3_600_000);
      const longer = (await sbx.getInfo()).endAt.getTime();
      assert.ok(
        longer > first + 30 * 60_000,
        `endAt moved about an hour out (${new Date(first).toISOString()} -> ${new Date(longer).toISOString()})`,
      );
      await sbx.setTimeout(120_000);
      const shorter = (await sbx.getInfo()).endAt.getTime();
      assert.ok(shorter < longer - 30 * 60_000, 'endAt moved back in');
    });

    it('lists with state and metadata filters and pages with nextToken', async () => {
      const tag = `t${Date.now()}`;
      const a = await make({ metadata: { listing: tag, which: 'a' } });
      const b = await make({ metadata: { listing: tag, which: 'b' } });
      await make({ metadata: { listing: 'other' } });
      const mine = await Sandbox.list({ ...sys.sdk(), query: { metadata: { listing: tag } } }).nextItems();
      assert.deepEqual(mine.map((s) => s.sandboxId).sort(), [a.sandboxId, b.sandboxId].sort());
      const onlyB = await Sandbox.list({ ...sys.sdk(), query: { metadata: { listing: tag, which: 'b' } } }).nextItems();
      assert.deepEqual(
        onlyB.map((s) => s.sandboxId),
        [b.sandboxId],
      );

      const pager = Sandbox.list({ ...sys.sdk(), limit: 1, query: { metadata: { listing: tag }, state: ['running'] } });
      const seen: string[] = [];
      while (pager.hasNext) seen.push(...(await pager.nextItems()).map((s) => s.sandboxId));
      assert.deepEqual(seen.sort(), [a.sandboxId, b.sandboxId].sort(), 'two pages of one');
      const oldestFirst = await Sandbox.list({
        ...sys.sdk(),
        order: 'asc',
        query: { metadata: { listing: tag } },
      }).nextItems();
      assert.deepEqual(
        oldestFirst.map((s) => s.sandboxId),
        [a.sandboxId, b.sandboxId],
      );
    });

    it("answers 404 for unknown and other teams' sandboxes, 401 without a valid key, in E2B's error shape", async () => {
      const sbx = await make();
      await assert.rejects(Sandbox.getInfo(sbx.sandboxId, sys.sdk(otherKey)), SandboxNotFoundError);
      assert.equal(await Sandbox.kill(sbx.sandboxId, sys.sdk(otherKey)), false);
      const theirs = await Sandbox.list(sys.sdk(otherKey)).nextItems();
      assert.ok(!theirs.some((s) => s.sandboxId === sbx.sandboxId));
      assert.equal(
        (await Sandbox.getInfo(sbx.sandboxId, sys.sdk())).state,
        'running',
        'still alive after the other team tried',
      );

      const missing = await fetch(`${sys.url}/sandboxes/cl-doesnotexist0000`, {
        headers: { 'X-API-KEY': sys.adminKey },
      });
      assert.equal(missing.status, 404);
      const body = (await missing.json()) as { code: number; message: string };
      assert.equal(body.code, 404);
      assert.match(body.message, /not found/);
      const noKey = await fetch(`${sys.url}/v2/sandboxes`);
      assert.equal(noKey.status, 401);
      assert.equal(((await noKey.json()) as { code: number }).code, 401);
      const badTemplate = await fetch(`${sys.url}/v2/sandboxes`, {
        method: 'POST',
        headers: { 'X-API-KEY': sys.adminKey, 'content-type': 'application/json' },
        body: JSON.stringify({ templateID: 'no-such-template' }),
      });
      assert.equal(badTemplate.status, 404);
      assert.match(((await badTemplate.json()) as { message: string }).message, /no-such-template/);
    });

    it('reports metrics, logs and templates', async () => {
      const sbx = await make();
      const metrics = await Sandbox.getMetrics(sbx.sandboxId, sys.sdk());
      assert.equal(metrics.length, 1);
      assert.ok(metrics[0]!.memTotal > 0, 'memory limit reported');
      assert.equal(metrics[0]!.cpuCount, 1);
      const many = await fetch(`${sys.url}/sandboxes/metrics?sandbox_ids=${sbx.sandboxId},cl-doesnotexist0000`, {
        headers: { 'X-API-KEY': sys.adminKey },
      });
      const manyBody = (await many.json()) as { sandboxes: Record<string, unknown> };
      assert.deepEqual(Object.keys(manyBody.sandboxes), [sbx.sandboxId]);
      const logs = (await (
        await fetch(`${sys.url}/sandboxes/${sbx.sandboxId}/logs`, { headers: { 'X-API-KEY': sys.adminKey } })
      ).json()) as { logs: { line: string }[] };
      assert.ok(
        logs.logs.some((l) => l.line.startsWith('capsule.created')),
        JSON.stringify(logs),
      );
      const templates = (await (
        await fetch(`${sys.url}/templates`, { headers: { 'X-API-KEY': sys.adminKey } })
      ).json()) as { templateID: string; public: boolean }[];
      assert.ok(templates.some((t) => t.templateID === 'minimal' && t.public));
    });

    it('snapshots a sandbox, starts new sandboxes from the snapshot, lists and deletes it', async () => {
      const sbx = await make();
      await sbx.files.write('/home/user/state.txt', 'saved in the snapshot');
      const name = `snap-${db}`;
      const snap = await sbx.createSnapshot({ name });
      assert.equal(snap.snapshotId, name);
      const listed = await Sandbox.listSnapshots({ ...sys.sdk(), sandboxId: sbx.sandboxId }).nextItems();
      assert.deepEqual(
        listed.map((x) => x.snapshotId),
        [name],
      );
      const fromSnap = await Sandbox.create(name, { ...sys.sdk(), timeoutMs: 120_000 });
      created.push(fromSnap.sandboxId);
      assert.equal(await fromSnap.files.read('/home/user/state.txt'), 'saved in the snapshot');
      assert.equal((await Sandbox.getInfo(fromSnap.sandboxId, sys.sdk())).templateId, name);
      // In use: refused; once its sandboxes are gone it can be deleted, once.
      await assert.rejects(Sandbox.deleteSnapshot(name, sys.sdk()), /409/);
      await fromSnap.kill();
      assert.equal(await Sandbox.deleteSnapshot(name, sys.sdk()), true);
      assert.equal(await Sandbox.deleteSnapshot(name, sys.sdk()), false);
      assert.deepEqual(await Sandbox.listSnapshots({ ...sys.sdk(), sandboxId: sbx.sandboxId }).nextItems(), []);
    });

    it('serves the REST edges the SDK does not use: v1 list, resume, refreshes, validation', async () => {
      const api = async (method: string, path: string, body?: unknown) => {
        const r = await fetch(`${sys.url}${path}`, {
          method,
          headers: { 'X-API-KEY': sys.adminKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        const text = await r.text();
        return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
      };
      const sbx = await make({ metadata: { edges: db } });
      const v1 = await api('GET', `/sandboxes?metadata=${encodeURIComponent(`edges=${db}`)}`);
      assert.equal(v1.status, 200);
      assert.deepEqual(
        (v1.body as unknown as { sandboxID: string }[]).map((s) => s.sandboxID),
        [sbx.sandboxId],
      );

      const repeated = await api(
        'GET',
        `/v2/sandboxes?state=running&state=paused&metadata=${encodeURIComponent(`edges=${db}`)}`,
      );
      assert.equal(repeated.status, 200, 'state may be repeated instead of comma-separated');
      assert.deepEqual(
        (repeated.body as unknown as { sandboxID: string }[]).map((s) => s.sandboxID),
        [sbx.sandboxId],
      );
      assert.equal((await api('GET', '/v2/sandboxes?state=stopped')).status, 400);

      assert.equal((await api('POST', `/sandboxes/${sbx.sandboxId}/refreshes`, { duration: 600 })).status, 204);
      assert.equal(
        (await api('POST', `/sandboxes/${sbx.sandboxId}/resume`, { timeout: 60 })).status,
        409,
        'resuming a running sandbox',
      );
      assert.equal((await api('POST', `/sandboxes/${sbx.sandboxId}/pause`, {})).status, 204);
      const v1Paused = await api('GET', `/sandboxes?metadata=${encodeURIComponent(`edges=${db}`)}`);
      assert.deepEqual(v1Paused.body, [], 'v1 lists running sandboxes only');
      const resumed = await api('POST', `/sandboxes/${sbx.sandboxId}/resume`, { timeout: 120 });
      assert.equal(resumed.status, 201);
      assert.equal(resumed.body?.sandboxID, sbx.sandboxId);
      assert.equal(resumed.body?.domain, 'wrenn.test');
      assert.equal((await sbx.commands.run('echo back')).stdout, 'back\n');

      for (const [body, why] of [
        [{}, /templateID/],
        [{ templateID: 'minimal', timeout: -1 }, /timeout/],
        [{ templateID: 'minimal', mcp: ['x'] }, /mcp/],
        [{ templateID: 'minimal', network: { denyOut: ['example.com'] } }, /example\.com.*no domain names/],
      ] as const) {
        const r = await api('POST', '/v2/sandboxes', body);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body?.code, 400);
        assert.match(String(r.body?.message), why);
      }
    });

    it("kills: gone from info and lists, its proxy routes answer E2B's 502, isRunning() is false, a second kill reports false", async () => {
      const sbx = await make();
      assert.equal(await Sandbox.kill(sbx.sandboxId, sys.sdk()), true);
      await assert.rejects(
        Sandbox.getInfo(sbx.sandboxId, sys.sdk()),
        (e: unknown) => e instanceof SandboxNotFoundError || e instanceof NotFoundError,
      );
      const all = await Sandbox.list(sys.sdk()).nextItems();
      assert.ok(!all.some((s) => s.sandboxId === sbx.sandboxId));
      const r = await fetch(`${sys.url}/`, {
        headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' },
      });
      assert.equal(r.status, 502);
      assert.equal(((await r.json()) as { message: string }).message, 'The sandbox was not found');
      assert.equal(await sbx.isRunning(), false, 'isRunning() of a killed sandbox');
      assert.equal(await Sandbox.kill(sbx.sandboxId, sys.sdk()), false);
      assert.equal(
        await sys.up.agent.manager.list().some((c) => c.id === sbx.sandboxId),
        false,
        'the agent no longer has it',
      );
    });
  });
}
