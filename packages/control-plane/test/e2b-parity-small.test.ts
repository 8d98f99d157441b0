// The smaller E2B parity items of issue 17, through the official e2b SDK (and E2B's REST routes
// where the SDK has no call) against a live `wrenn up` on the namespace runtime: the e2b_ form of
// API keys, GET /templates/aliases/{alias}, sandbox metrics over a time range, `mcp` at create,
// upload parents made for the user, a boot_id per boot, and the team routes (/teams/{id}/metrics,
// /api-keys, /access-tokens).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox, Template } from 'e2b';
import { canonicalApiKey, createApiKey, e2bKeyOf } from '../src/auth/api-keys.js';
import { createTeam } from '../src/db/repositories/teams.js';
import { type LiveSystem, startLive, waitFor } from './e2b-live.js';

// The check the e2b SDKs ran on E2B_API_KEY from #1356 (e2b-dev/E2B, JS and Python) on: 'e2b_' and hex.
const SDK_KEY_CHECK = /^e2b_[0-9a-f]+$/;

describe('e2b SDK: the smaller parity items (issue 17)', () => {
  let sys: LiveSystem;
  let otherKey: string;
  let otherTeamId: string;
  const created: string[] = [];
  const make = async (template = 'minimal', opts: Parameters<typeof Sandbox.create>[1] = {}) => {
    const s = await Sandbox.create(template, { ...sys.sdk(), timeoutMs: 300_000, ...opts });
    created.push(s.sandboxId);
    return s;
  };
  const api = async (method: string, path: string, body?: unknown, key: string | null = e2bKeyOf(sys.adminKey)) => {
    const r = await fetch(`${sys.url}${path}`, {
      method,
      headers: {
        ...(key ? { 'X-API-KEY': key } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.text();
    return { status: r.status, body: text ? (JSON.parse(text) as unknown) : undefined };
  };
  const adminTeamId = async () => ((await api('GET', '/teams')).body as { teamID: string }[])[0]?.teamID as string;

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 9 });
    const team = await createTeam(sys.cp.ctx.database.db, { name: 'other' });
    otherTeamId = team.id;
    otherKey = e2bKeyOf((await createApiKey(sys.cp.ctx.database.db, { teamId: team.id, name: 'other' })).key);
  });
  after(async () => {
    for (const id of created) await Sandbox.kill(id, sys.sdk()).catch(() => undefined);
    await sys?.close();
  });

  it('keys: every key has an e2b_ form the SDK check accepts, taken by the E2B routes and the native API', async () => {
    const e2bKey = e2bKeyOf(sys.adminKey);
    assert.match(e2bKey, SDK_KEY_CHECK);
    assert.equal(canonicalApiKey(e2bKey), sys.adminKey);
    // The SDK with its default settings (sys.sdk() passes the e2b_ form) creates and lists.
    const sbx = await make();
    assert.ok((await Sandbox.list(sys.sdk()).nextItems()).some((s) => s.sandboxId === sbx.sandboxId));
    // The native API takes the same form, as X-API-Key and as a bearer token.
    const native = await fetch(`${sys.url}/v1/capsules/${sbx.sandboxId}`, { headers: { 'x-api-key': e2bKey } });
    assert.equal(native.status, 200);
    const bearer = await fetch(`${sys.url}/v1/capsules`, { headers: { authorization: `Bearer ${e2bKey}` } });
    assert.equal(bearer.status, 200);
    // A new key's answer carries both forms.
    const made = (await (
      await fetch(`${sys.url}/v1/api-keys`, {
        method: 'POST',
        headers: { 'x-api-key': sys.adminKey, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'both forms' }),
      })
    ).json()) as { key: string; e2b_key: string; id: string };
    assert.equal(made.e2b_key, e2bKeyOf(made.key));
    assert.match(made.e2b_key, SDK_KEY_CHECK);
    assert.equal((await api('GET', '/v2/sandboxes', undefined, made.e2b_key)).status, 200);
    // Revoked: refused in both forms. Malformed e2b_ keys are refused, not decoded into something.
    await fetch(`${sys.url}/v1/api-keys/${made.id}`, { method: 'DELETE', headers: { 'x-api-key': sys.adminKey } });
    assert.equal((await api('GET', '/v2/sandboxes', undefined, made.e2b_key)).status, 401);
    assert.equal((await api('GET', '/v2/sandboxes', undefined, made.key)).status, 401);
    // The upper-case form of a live key is refused. Keys are random: take one whose hex has a letter
    // in it (a key of digits and p-y only has none, and its upper-case form is the key itself).
    let live = e2bKey;
    while (!/[a-f]/.test(live.slice(4))) {
      const more = (await (
        await fetch(`${sys.url}/v1/api-keys`, {
          method: 'POST',
          headers: { 'x-api-key': sys.adminKey, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'hex with a letter' }),
        })
      ).json()) as typeof made;
      live = more.e2b_key;
    }
    assert.equal((await api('GET', '/v2/sandboxes', undefined, live)).status, 200);
    const upper = `e2b_${live.slice(4).toUpperCase()}`;
    for (const bad of [`e2b_${'0'.repeat(40)}`, `e2b_${Buffer.from('A'.repeat(32)).toString('hex')}`, upper]) {
      const r = await api('GET', '/v2/sandboxes', undefined, bad);
      assert.equal(r.status, 401, bad);
      assert.equal((r.body as { code: number }).code, 401);
    }
  });

  it('GET /templates/aliases/{alias}: own and built-in templates, 404 otherwise, as the SDK reads it', async () => {
    assert.equal(await Template.exists('minimal', sys.sdk()), true);
    assert.equal(await Template.exists('no-such-template-here', sys.sdk()), false);
    assert.deepEqual((await api('GET', '/templates/aliases/minimal')).body, { templateID: 'minimal', public: true });
    const sbx = await make();
    const name = 'alias-probe';
    await sbx.createSnapshot({ name });
    const own = (await api('GET', `/templates/aliases/${name}`)).body as { templateID: string; public: boolean };
    assert.equal(own.public, false);
    assert.match(own.templateID, /^tpl-/);
    assert.equal(await Template.exists(name, sys.sdk()), true);
    // Names are per team: another team does not see it (and may use the name itself).
    assert.equal(await Template.exists(name, sys.sdk(otherKey)), false);
    const bad = await api('GET', '/templates/aliases/Not%20A%20Name!');
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { code: number }).code, 400);
    assert.equal((await api('GET', '/templates/aliases/minimal', undefined, null)).status, 401);
    assert.equal(await Sandbox.deleteSnapshot(name, sys.sdk()), true);
    assert.equal(await Template.exists(name, sys.sdk()), false);
  });

  it('sandbox metrics: samples every 5 s over the sandbox life, start/end honoured, CPU use measured', async () => {
    const sbx = await make();
    const born = Date.now();
    // Busy for a while so some sample shows CPU use.
    await sbx.commands.run("timeout 8 sh -c 'while :; do :; done' >/dev/null 2>&1 &");
    const all = await waitFor(
      'four metrics samples',
      async () => {
        const m = await sbx.getMetrics();
        return m.length >= 4 ? m : undefined;
      },
      60_000,
      1000,
    );
    const times = all.map((m) => m.timestamp.getTime());
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'oldest first',
    );
    assert.ok((times[0] as number) >= born - 5_000 && (times.at(-1) as number) <= Date.now());
    for (const m of all) {
      assert.equal(m.cpuCount, 1);
      assert.ok(m.memTotal > 0 && m.memUsed > 0 && m.memUsed <= m.memTotal, JSON.stringify(m));
    }
    assert.ok(
      all.some((m) => m.cpuUsedPct > 20),
      `a busy loop shows in cpuUsedPct: ${all.map((m) => m.cpuUsedPct)}`,
    );
    // A window from the second sample on (the API takes whole seconds; samples are 5 s apart).
    const start = new Date(Math.floor((times[1] as number) / 1000) * 1000);
    const part = await sbx.getMetrics({ start, end: new Date() });
    assert.ok(part.length >= 1 && part.length < all.length, `${part.length} of ${all.length}`);
    for (const m of part) assert.ok(m.timestamp.getTime() >= start.getTime(), 'a sample before start');
    const early = await sbx.getMetrics({ start: new Date(born - 3_600_000), end: new Date(born - 60_000) });
    assert.deepEqual(early, [], 'nothing before the sandbox was born');
    // start after end: 400 in E2B's shape; a value that is not a number: 400.
    const s = Math.floor(Date.now() / 1000);
    const inverted = await api('GET', `/sandboxes/${sbx.sandboxId}/metrics?start=${s}&end=${s - 60}`);
    assert.equal(inverted.status, 400);
    assert.equal((inverted.body as { code: number }).code, 400);
    assert.equal((await api('GET', `/sandboxes/${sbx.sandboxId}/metrics?start=yesterday`)).status, 400);
    // Another team's sandbox: not found.
    assert.equal((await api('GET', `/sandboxes/${sbx.sandboxId}/metrics`, undefined, otherKey)).status, 404);
  });

  it('mcp: accepted, validated and recorded; the SDK starts the gateway itself', async () => {
    // A template with a stand-in mcp-gateway that records what the SDK hands it.
    const maker = await make();
    await maker.files.write(
      '/usr/local/bin/mcp-gateway',
      '#!/bin/sh\nmkdir -p /etc/mcp-gateway\nprintf %s "$2" > /etc/mcp-gateway/config.json\nprintf %s "$GATEWAY_ACCESS_TOKEN" > /etc/mcp-gateway/.token\n',
      { user: 'root' },
    );
    await maker.commands.run('chmod 755 /usr/local/bin/mcp-gateway', { user: 'root' });
    const name = 'mcp-stand-in';
    await maker.createSnapshot({ name });
    const mcp = { exa: { apiKey: 'exa-secret' }, 'github/owner/repo': { runCmd: 'node server.js' } };
    const sbx = await make(name, { mcp } as Parameters<typeof Sandbox.create>[1]);
    // The SDK ran the gateway as root with its config and a token of its own.
    assert.deepEqual(JSON.parse(await sbx.files.read('/etc/mcp-gateway/config.json', { user: 'root' })), mcp);
    const token = await sbx.getMcpToken();
    assert.ok(token && token.length > 10);
    assert.equal(await sbx.files.read('/etc/mcp-gateway/.token', { user: 'root' }), token);
    assert.match(sbx.getMcpUrl(), new RegExp(`^https://50005-${sbx.sandboxId}\\.`));
    // Recorded, as E2B records it: the server names (never their settings) in the sandbox's log.
    const logs = (await api('GET', `/sandboxes/${sbx.sandboxId}/logs`)).body as {
      logEntries: { fields: Record<string, string> }[];
    };
    const createdEntry = logs.logEntries.find((e) => e.fields.kind === 'capsule.created');
    assert.deepEqual(JSON.parse(createdEntry?.fields.mcp_servers ?? 'null'), ['exa', 'github/owner/repo']);
    assert.ok(!JSON.stringify(logs).includes('exa-secret'), 'a server setting reached the log');
    // Validated at the API: 400 in E2B's shape, nothing created.
    const before = (await Sandbox.list(sys.sdk()).nextItems()).length;
    for (const [bad, why] of [
      [[], /object/],
      [{ 'bad name!': {} }, /server name/],
      [{ exa: 'key' }, /settings/],
      [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`s${i}`, {}])), /at most 64/],
      [{ big: { blob: 'x'.repeat(70_000) } }, /bytes/],
    ] as const) {
      const r = await api('POST', '/sandboxes', { templateID: 'minimal', mcp: bad });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match((r.body as { message: string }).message, why);
    }
    assert.equal((await Sandbox.list(sys.sdk()).nextItems()).length, before);
    // null is "no gateway".
    const none = await api('POST', '/sandboxes', { templateID: 'minimal', mcp: null, timeout: 60 });
    assert.equal(none.status, 201, JSON.stringify(none.body));
    created.push((none.body as { sandboxID: string }).sandboxID);
    await sbx.kill();
    assert.equal(await Sandbox.deleteSnapshot(name, sys.sdk()), true);
  });

  it("files.write makes missing parents as root, owned by the sandbox's user, as E2B's envd does", async () => {
    const sbx = await make();
    await sbx.files.write('/opt/wrenn-parity/a/notes.txt', 'made');
    const st = await sbx.commands.run(
      'stat -c "%n %U %a" /opt /opt/wrenn-parity /opt/wrenn-parity/a /opt/wrenn-parity/a/notes.txt',
    );
    assert.equal(
      st.stdout,
      '/opt root 755\n/opt/wrenn-parity user 755\n/opt/wrenn-parity/a user 755\n/opt/wrenn-parity/a/notes.txt user 644\n',
    );
    // The file itself is still the user's to create: under /root (0700) it is refused, and the
    // directory made for it is gone again.
    await assert.rejects(sbx.files.write('/root/wrenn-parity/x.txt', 'no'));
    const left = await sbx.commands.run('ls -d /root/wrenn-parity 2>&1 || true', { user: 'root' });
    assert.match(left.stdout, /No such file/);
  });

  it('boot_id: each sandbox boots with its own; a memory pause keeps it, a disk-only resume is a new boot', async () => {
    const read = async (s: Sandbox) => (await s.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const a = await make();
    const b = await make();
    const first = await read(a);
    assert.match(first, /^[0-9a-f-]{36}$/);
    assert.notEqual(first, await read(b));
    assert.equal(await a.pause(), true);
    const resumed = await Sandbox.connect(a.sandboxId, sys.sdk());
    assert.equal(await read(resumed), first, 'a memory pause is no reboot');
    assert.equal(await resumed.pause({ keepMemory: false }), true);
    const rebooted = await Sandbox.connect(a.sandboxId, sys.sdk());
    const second = await read(rebooted);
    assert.match(second, /^[0-9a-f-]{36}$/);
    assert.notEqual(second, first, 'a resume from disk is a new boot');
  });

  it('team routes: /teams, /teams/{id}/metrics (+max), /api-keys, /access-tokens, team-scoped', async () => {
    const teamId = await adminTeamId();
    assert.ok(teamId);
    await make();
    const now = Math.floor(Date.now() / 1000);
    // The last point lies after every create so far (points fall on whole steps from start).
    const m = await api('GET', `/teams/${teamId}/metrics?start=${now - 120}&end=${now + 5}`);
    assert.equal(m.status, 200, JSON.stringify(m.body));
    const points = m.body as {
      timestamp: string;
      timestampUnix: number;
      concurrentSandboxes: number;
      sandboxStartRate: number;
    }[];
    assert.ok(points.length >= 20 && points.length <= 30, `5 s steps over 2 minutes: ${points.length}`);
    for (const p of points) assert.equal(p.timestampUnix, Math.floor(Date.parse(p.timestamp) / 1000));
    const running = (await Sandbox.list(sys.sdk()).nextItems()).length;
    assert.ok(running >= 1);
    assert.ok((points.at(-1)?.concurrentSandboxes ?? 0) >= running, JSON.stringify(points.at(-1)));
    assert.ok(points.some((p) => p.sandboxStartRate > 0));
    const max = await api(
      'GET',
      `/teams/${teamId}/metrics/max?metric=concurrent_sandboxes&start=${now - 120}&end=${now + 5}`,
    );
    assert.equal(max.status, 200);
    assert.ok((max.body as { value: number }).value >= running);
    // Default range (the last 7 days, 15-minute steps); another team's id: 403; bad ranges: 400.
    const week = (await api('GET', `/teams/${teamId}/metrics`)).body as unknown[];
    assert.ok(week.length >= 600 && week.length <= 700, `${week.length} points`);
    const other = await api('GET', `/teams/${otherTeamId}/metrics`);
    assert.equal(other.status, 403);
    assert.equal((other.body as { code: number }).code, 403);
    assert.equal((await api('GET', `/teams/${teamId}/metrics?start=${now}&end=${now - 1}`)).status, 400);
    assert.equal((await api('GET', `/teams/${teamId}/metrics?start=-5`)).status, 400);
    assert.equal((await api('GET', `/teams/${teamId}/metrics/max?metric=cpu`)).status, 400);
    assert.equal((await api('GET', `/teams/${teamId}/metrics`, undefined, null)).status, 401);

    // API keys: made in the e2b_ form, used by the SDK, renamed, listed per team, deleted.
    const made = await api('POST', '/api-keys', { name: 'ci' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const key = made.body as { id: string; key: string; name: string; mask: { prefix: string } };
    assert.match(key.key, SDK_KEY_CHECK);
    assert.equal(key.name, 'ci');
    assert.ok(Array.isArray(await Sandbox.list(sys.sdk(key.key)).nextItems()));
    assert.equal((await api('PATCH', `/api-keys/${key.id}`, { name: 'ci-renamed' })).status, 200);
    const listed = (await api('GET', '/api-keys')).body as { id: string; name: string; mask: { prefix: string } }[];
    assert.equal(listed.find((k) => k.id === key.id)?.name, 'ci-renamed');
    assert.ok(!JSON.stringify(listed).includes(key.key.slice(4)), 'a listed key shows its secret');
    const theirs = (await api('GET', '/api-keys', undefined, otherKey)).body as { id: string }[];
    assert.ok(!theirs.some((k) => k.id === key.id), "another team lists this team's key");
    assert.equal((await api('DELETE', `/api-keys/${key.id}`, undefined, otherKey)).status, 404);
    assert.equal((await api('PATCH', `/api-keys/${key.id}`, { name: 'x' }, otherKey)).status, 404);
    assert.equal((await api('POST', '/api-keys', { name: '' })).status, 400);
    assert.equal((await api('POST', '/api-keys', { name: 'x', extra: 1 })).status, 400);
    assert.equal((await api('DELETE', `/api-keys/${key.id}`)).status, 204);
    assert.equal((await api('GET', '/v2/sandboxes', undefined, key.key)).status, 401);
    assert.equal((await api('DELETE', `/api-keys/${key.id}`)).status, 404);

    // Access tokens: gone, as on E2B.
    const token = await api('POST', '/access-tokens', { name: 'cli' });
    assert.equal(token.status, 410);
    assert.equal((token.body as { code: number }).code, 410);
    assert.equal((await api('DELETE', '/access-tokens/tok-1')).status, 404);
    assert.equal((await api('POST', '/access-tokens', { name: 'cli' }, null)).status, 401);
  });
});
