// Native API checks that need no running capsule: authentication, validation messages, team
// scoping, listing filters and pagination over real rows, illegal state moves, API keys, metrics,
// the test page and WebSocket refusals. Runs on SQLite and on PostgreSQL.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createCapsule as insertCapsule } from '../src/db/repositories/capsules.js';
import type { HostLoad } from '../src/db/repositories/hosts.js';
import { chooseHost } from '../src/scheduler/least-loaded.js';
import { client, newTeamKey, openWs, startBareControlPlane } from './native-helpers.js';

const row = (teamId: string, over: Record<string, unknown> = {}) => ({
  teamId,
  hostId: null,
  template: 'minimal',
  runtime: 'namespace',
  vcpus: 1,
  memoryMb: 256,
  timeoutSec: 300,
  state: 'running' as const,
  ...over,
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`native API without capsules [${dialect}]`, () => {
    test('authentication: missing, malformed, unknown and revoked keys are 401; X-API-Key and Bearer work', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { key } = await newTeamKey(cp);
      const anon = client(cp.url);

      const none = await anon('GET', '/v1/capsules');
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'unauthenticated');
      assert.match(none.body.error.message, /X-API-Key/);

      for (const bad of ['nope', `wrn_${'a'.repeat(32)}`, key.slice(0, -1) + (key.endsWith('a') ? 'b' : 'a')]) {
        const r = await anon('GET', '/v1/capsules', undefined, { 'x-api-key': bad });
        assert.equal(r.status, 401, `key ${bad} must be refused`);
      }
      const basic = await anon('GET', '/v1/capsules', undefined, { authorization: `Basic ${key}` });
      assert.equal(basic.status, 401);
      // ?api_key= is for WebSocket upgrades only (browsers cannot set their headers).
      assert.equal((await anon('GET', `/v1/capsules?api_key=${key}`)).status, 401);

      const viaHeader = await client(cp.url, key)('GET', '/v1/capsules');
      assert.equal(viaHeader.status, 200);
      assert.deepEqual(viaHeader.body, { capsules: [], next_cursor: null });
      const viaBearer = await anon('GET', '/v1/capsules', undefined, { authorization: `Bearer ${key}` });
      assert.equal(viaBearer.status, 200);

      // Auth comes before body validation: a bad body without a key is still 401.
      assert.equal((await anon('POST', '/v1/capsules', '{not json')).status, 401);
    });

    test('unknown routes: 404 in the API error shape, naming the route', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { key } = await newTeamKey(cp);
      const r = await client(cp.url, key)('DELETE', '/v1/no-such-thing?x=1');
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, 'not_found');
      assert.match(r.body.error.message, /no route DELETE \/v1\/no-such-thing;/);
    });

    test('validation: 400 naming the field for out-of-range, unknown and malformed input', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { key } = await newTeamKey(cp);
      const call = client(cp.url, key);

      const cases: Array<[unknown, RegExp]> = [
        [{ vcpus: 99 }, /body\/vcpus must be <= 8/],
        [{ vcpus: 0 }, /body\/vcpus must be >= 1/],
        [{ vcpus: 1.5 }, /body\/vcpus must be integer/],
        [{ memory_mb: 1 }, /body\/memory_mb must be >= 64/],
        [{ timeout_sec: -1 }, /body\/timeout_sec must be >= 0/],
        [{ timeout_action: 'explode' }, /body\/timeout_action/],
        [{ metadata: { a: { nested: true } } }, /body\/metadata/],
        [{ env: 'x' }, /body\/env must be object/],
        [{ flavour: 'large' }, /body must NOT have additional properties|flavour/],
        [{ env: { '1BAD': 'x' } }, /env key '1BAD'/],
        [{ network: { allow_out: { a: 1 } } }, /body\/network\/allow_out must be array/],
        [{ network: { block_out: [] } }, /body\/network must NOT have additional properties|block_out/],
        [{ network: { allow_out: ['nope'] } }, /network\.allow_out: "nope" is not a domain/],
        [{ network: { deny_out: ['example.com'] } }, /network\.deny_out: .*takes no domain names/],
        [
          { network: { rules: { 'api.example.com': [{ transform: { headers: { Host: 'x' } } }] } } },
          /the Host header cannot be set by a rule/,
        ],
        [
          { network: { allow_out: ['10.0.0.1/8'] } },
          /network\.allow_out: .*host bits set: did you mean 10\.0\.0\.0\/8/,
        ],
        [{ network: { allow_out: ['1.2.3.4/40'] } }, /network\.allow_out: .*not an IPv4 CIDR/],
      ];
      for (const [body, re] of cases) {
        const r = await call('POST', '/v1/capsules', body);
        assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.text}`);
        assert.equal(typeof r.body.error.code, 'string');
        assert.match(r.body.error.message, re, JSON.stringify(body));
      }
      const malformed = await call('POST', '/v1/capsules', '{"vcpus": ');
      assert.equal(malformed.status, 400);
      assert.match(malformed.body.error.message, /JSON/i);

      const tmpl = await call('POST', '/v1/capsules', { template: 'Not A Name' });
      assert.equal(tmpl.status, 400);
      assert.match(tmpl.body.error.message, /template name/);
      const missing = await call('POST', '/v1/capsules', { template: 'no-such-template' });
      assert.equal(missing.status, 404);
      assert.match(missing.body.error.message, /no-such-template/);

      // No host is registered: the request is valid but cannot be placed.
      const noHost = await call('POST', '/v1/capsules', { template: 'minimal' });
      assert.equal(noHost.status, 503);
      assert.equal(noHost.body.error.code, 'no_host_available');
      assert.match(noHost.body.error.message, /no host is online/);

      const execBad = await call('POST', '/v1/capsules/cl-abcd/exec', { args: ['x'] });
      assert.equal(execBad.status, 400);
      assert.match(execBad.body.error.message, /cmd/);
      const timeoutBad = await call('POST', '/v1/capsules/cl-abcd/timeout', { timeout_sec: 'soon' });
      assert.equal(timeoutBad.status, 400);
      assert.match(timeoutBad.body.error.message, /timeout_sec/);
      const list = await call('GET', '/v1/capsules?limit=0');
      assert.equal(list.status, 400);
      assert.match(list.body.error.message, /querystring\/limit/);
      const typo = await call('GET', '/v1/capsules?stat=running');
      assert.equal(typo.status, 400);
      assert.match(typo.body.error.message, /stat/);
      const badState = await call('GET', '/v1/capsules?state=sleeping');
      assert.equal(badState.status, 400);
      assert.match(badState.body.error.message, /state/);
      const badCursor = await call('GET', '/v1/capsules?cursor=garbage');
      assert.equal(badCursor.status, 400);
      assert.match(badCursor.body.error.message, /cursor/);
      const snapBad = await call('POST', '/v1/snapshots', { capsule_id: 'cl-abcd', name: 'UPPER' });
      assert.equal(snapBad.status, 400);
    });

    test("team scoping: another team's capsule is 404 for every route", async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const a = await newTeamKey(cp, 'a');
      const b = await newTeamKey(cp, 'b');
      const cap = await insertCapsule(cp.ctx.database.db, row(b.teamId));
      const asA = client(cp.url, a.key);
      const asB = client(cp.url, b.key);

      const mine = await asB('GET', `/v1/capsules/${cap.id}`);
      assert.equal(mine.status, 200);
      assert.equal(mine.body.id, cap.id);
      assert.equal(mine.body.state, 'running');
      assert.equal(mine.body.memory_mb, 256);

      const routes: Array<[string, string, unknown?]> = [
        ['GET', ''],
        ['DELETE', ''],
        ['POST', '/pause', {}],
        ['POST', '/resume', {}],
        ['POST', '/ping'],
        ['POST', '/timeout', { timeout_sec: 10 }],
        ['POST', '/exec', { cmd: 'true' }],
        ['GET', '/metrics'],
        ['GET', '/events'],
        ['GET', '/files?path=/etc/hostname'],
        ['PUT', '/files?path=/tmp/x', Buffer.from('x')],
        ['GET', '/files/list?path=/'],
        ['POST', '/files/mkdir', { path: '/tmp/d' }],
        ['DELETE', '/files?path=/tmp/x'],
        ['GET', '/processes'],
        ['DELETE', '/processes/1'],
      ];
      for (const [method, suffix, body] of routes) {
        const r = await asA(method, `/v1/capsules/${cap.id}${suffix}`, body);
        assert.equal(r.status, 404, `${method} ${suffix} -> ${r.status} ${r.text}`);
        assert.equal(r.body.error.code, 'not_found');
      }
      assert.equal((await asA('POST', '/v1/snapshots', { capsule_id: cap.id, name: 'stolen' })).status, 404);
      assert.equal((await asA('GET', '/v1/capsules')).body.capsules.length, 0);
      assert.equal((await asB('GET', '/v1/capsules')).body.capsules.length, 1);
      // Ids that are not capsule ids at all are plain 404s too.
      assert.equal((await asA('GET', '/v1/capsules/../../etc')).status, 404);
    });

    test('listing: state, metadata and template filters with cursor pagination', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { teamId, key } = await newTeamKey(cp);
      const db = cp.ctx.database.db;
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const c = await insertCapsule(
          db,
          row(teamId, {
            state: i === 6 ? 'stopped' : i % 2 === 0 ? 'running' : 'paused',
            template: i < 3 ? 'minimal' : 'base',
            metadata: { n: String(i), parity: i % 2 === 0 ? 'even' : 'odd' },
          }),
        );
        ids.push(c.id);
        await new Promise((r) => setTimeout(r, 3)); // distinct created_at for a stable order
      }
      const call = client(cp.url, key);
      const all = await call('GET', '/v1/capsules');
      assert.deepEqual(
        all.body.capsules.map((c: { id: string }) => c.id),
        ids.slice(0, 6).reverse(),
        'newest first; stopped capsules only when asked for',
      );
      const stopped = await call('GET', '/v1/capsules?state=stopped');
      assert.deepEqual(
        stopped.body.capsules.map((c: { id: string }) => c.id),
        [ids[6]],
      );
      const running = await call('GET', '/v1/capsules?state=running');
      assert.deepEqual(
        running.body.capsules.map((c: { id: string }) => c.id),
        [ids[4], ids[2], ids[0]],
      );
      const both = await call('GET', '/v1/capsules?state=running,stopped');
      assert.equal(both.body.capsules.length, 4);
      const odd = await call('GET', '/v1/capsules?metadata.parity=odd');
      assert.deepEqual(
        odd.body.capsules.map((c: { id: string }) => c.id),
        [ids[5], ids[3], ids[1]],
      );
      const oddBase = await call('GET', '/v1/capsules?metadata=parity:odd&template=base');
      assert.deepEqual(
        oddBase.body.capsules.map((c: { id: string }) => c.id),
        [ids[5], ids[3]],
      );
      const two = await call('GET', '/v1/capsules?metadata=parity:odd&metadata=n:3');
      assert.deepEqual(
        two.body.capsules.map((c: { id: string }) => c.id),
        [ids[3]],
      );
      const badMd = await call('GET', '/v1/capsules?metadata=novalue');
      assert.equal(badMd.status, 400);
      assert.match(badMd.body.error.message, /key:value/);

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { body: { capsules: Array<{ id: string }>; next_cursor: string | null } } = await call(
          'GET',
          `/v1/capsules?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        seen.push(...page.body.capsules.map((c) => c.id));
        cursor = page.body.next_cursor;
        pages++;
      } while (cursor);
      assert.equal(pages, 2);
      assert.deepEqual(seen, ids.slice(0, 6).reverse());
    });

    test('illegal state moves are 409 with a hint; destroyed capsules are 404 on DELETE', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { teamId, key } = await newTeamKey(cp);
      const db = cp.ctx.database.db;
      const paused = await insertCapsule(db, row(teamId, { state: 'paused' }));
      const running = await insertCapsule(db, row(teamId));
      const stopped = await insertCapsule(db, row(teamId, { state: 'stopped' }));
      const call = client(cp.url, key);

      const p = await call('POST', `/v1/capsules/${paused.id}/pause`);
      assert.equal(p.status, 409);
      assert.match(p.body.error.message, /is paused; cannot pause it; resume it first/);
      const r = await call('POST', `/v1/capsules/${running.id}/resume`);
      assert.equal(r.status, 409);
      assert.match(r.body.error.message, /already running/);
      const e = await call('POST', `/v1/capsules/${paused.id}/exec`, { cmd: 'true' });
      assert.equal(e.status, 409);
      assert.match(e.body.error.message, /resume it first/);
      assert.equal((await call('POST', `/v1/capsules/${stopped.id}/ping`)).status, 409);
      const d = await call('DELETE', `/v1/capsules/${stopped.id}`);
      assert.equal(d.status, 404);
      assert.match(d.body.error.message, /already destroyed/);
      const badMode = await call('POST', `/v1/capsules/${running.id}/pause`, { mode: 'nap' });
      assert.equal(badMode.status, 400);
      assert.match(badMode.body.error.message, /body\/mode/);
    });

    test('templates, snapshots and hosts without capsules', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { key } = await newTeamKey(cp);
      const call = client(cp.url, key);
      const templates = await call('GET', '/v1/templates');
      assert.equal(templates.status, 200);
      assert.deepEqual(
        templates.body.templates.map((x: { name: string; builtin: boolean }) => [x.name, x.builtin]),
        [
          ['base', true],
          ['code-interpreter-v1', true],
          ['minimal', true],
        ],
      );
      const delBuiltin = await call('DELETE', '/v1/templates/minimal');
      assert.equal(delBuiltin.status, 409);
      assert.match(delBuiltin.body.error.message, /built-in/);
      assert.equal((await call('DELETE', '/v1/templates/nothing-here')).status, 404);
      assert.equal((await call('DELETE', '/v1/snapshots/nothing-here')).status, 404);
      assert.deepEqual((await call('GET', '/v1/snapshots')).body, { snapshots: [] });
      assert.deepEqual((await call('GET', '/v1/hosts')).body, { hosts: [] });
    });

    test('API keys: created key is shown once, works, lists without the secret, and stops working when revoked', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { key } = await newTeamKey(cp);
      const other = await newTeamKey(cp, 'other');
      const call = client(cp.url, key);
      const made = await call('POST', '/v1/api-keys', { name: 'ci' });
      assert.equal(made.status, 201);
      assert.match(made.body.key, /^wrn_[a-z0-9]{32}$/);
      assert.equal(made.body.name, 'ci');
      const listed = await call('GET', '/v1/api-keys');
      assert.equal(listed.body.api_keys.length, 2);
      assert.ok(!listed.text.includes(made.body.key), 'the list never contains a key');
      assert.equal((await client(cp.url, made.body.key)('GET', '/v1/capsules')).status, 200);
      // Another team cannot revoke it.
      assert.equal((await client(cp.url, other.key)('DELETE', `/v1/api-keys/${made.body.id}`)).status, 404);
      assert.equal((await call('DELETE', `/v1/api-keys/${made.body.id}`)).status, 204);
      assert.equal((await client(cp.url, made.body.key)('GET', '/v1/capsules')).status, 401);
      assert.equal((await call('POST', '/v1/api-keys', { name: '' })).status, 400);
    });

    test('Prometheus metrics, test page and OpenAPI document', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { teamId, key } = await newTeamKey(cp);
      await insertCapsule(cp.ctx.database.db, row(teamId));
      await insertCapsule(cp.ctx.database.db, row(teamId, { state: 'paused' }));
      await client(cp.url, key)('GET', '/v1/capsules');
      const m = await fetch(`${cp.url}/metrics`);
      assert.equal(m.status, 200);
      const text = await m.text();
      // The value of the one sample of `name` carrying all `labels` (label order is prom-client's business).
      const sample = (name: string, ...labels: string[]) => {
        const lines = text.split('\n').filter((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
        assert.equal(lines.length, 1, `one ${name} sample with ${labels.join(',')}: ${lines.join(' | ')}`);
        return Number(lines[0]!.split(' ').pop());
      };
      assert.equal(sample('wrenn_capsules', 'state="running"'), 1);
      assert.equal(sample('wrenn_capsules', 'state="paused"'), 1);
      assert.equal(sample('wrenn_capsules', 'state="stopped"'), 0);
      assert.ok(sample('wrenn_http_requests_total', 'surface="native"', 'method="GET"', 'status="200"') >= 1);
      assert.equal(
        sample('wrenn_api_route_duration_seconds_count', 'method="GET"', 'route="/v1/capsules"', 'status="200"'),
        1,
      );

      const page = await fetch(`${cp.url}/test`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      const html = await page.text();
      for (const s of ['/capsules', '/pause', '/resume', '/exec', '/snapshots', 'X-API-Key'])
        assert.ok(html.includes(s), `page uses ${s}`);
      assert.ok(!/<script[^>]+src=/.test(html) && !/<link[^>]+href=/.test(html), 'no external files');

      const doc = await (await fetch(`${cp.url}/openapi.yaml`)).text();
      for (const p of ['/v1/capsules:', '/v1/capsules/{id}/exec:', '/v1/snapshots:', '/v1/api-keys:'])
        assert.ok(doc.includes(p), `OpenAPI has ${p}`);
    });

    test('WebSockets: no key is 401 before the upgrade, unknown capsule 404, paused capsule 409', async (t) => {
      const cp = await startBareControlPlane(t, dialect);
      const { teamId, key } = await newTeamKey(cp);
      const paused = await insertCapsule(cp.ctx.database.db, row(teamId, { state: 'paused' }));
      const ws = cp.url.replace('http', 'ws');
      await assert.rejects(
        openWs(`${ws}/v1/capsules/${paused.id}/exec/stream`),
        (e: { status?: number }) => e.status === 401,
      );
      await assert.rejects(
        openWs(`${ws}/v1/capsules/cl-nothere/pty?api_key=${key}`),
        (e: { status?: number }) => e.status === 404,
      );
      await assert.rejects(
        openWs(`${ws}/v1/capsules/${paused.id}/pty`, { 'x-api-key': key }),
        (e: { status?: number; body?: string }) => {
          return e.status === 409 && /resume it first/.test(e.body ?? '');
        },
      );
    });
  });
}

test('scheduler: least loaded by the larger of vCPU and memory share, honouring runtime and snapshot host', () => {
  const host = (id: string, cpu: number, mem: number, runtimes = ['namespace']) => ({
    id,
    address: `http://127.0.0.1:1/${id}`,
    status: 'online' as const,
    runtimes,
    cpuCount: cpu,
    memoryMb: mem,
    reported: { capsuleCount: 0, allocatedVcpus: 0, allocatedMemoryMb: 0 },
    lastHeartbeatAt: null,
    createdAt: new Date(0),
    agentSecret: null,
  });
  const loads: HostLoad[] = [
    { host: host('host-a', 4, 8192), capsules: 2, vcpus: 2, memoryMb: 1024 }, // after +1/512: max(0.75, 0.19) = 0.75
    { host: host('host-b', 8, 4096), capsules: 3, vcpus: 3, memoryMb: 2048 }, // max(0.5, 0.625) = 0.625
    { host: host('host-c', 16, 65536, ['qemu']), capsules: 0, vcpus: 0, memoryMb: 0 },
  ];
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 512, runtime: 'namespace' }).host.id, 'host-b');
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 512 }).host.id, 'host-c');
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 512 }).runtime, 'qemu');
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 512, runtimes: ['namespace'] }).host.id, 'host-b');
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 512, hostId: 'host-a' }).host.id, 'host-a');
  // Memory decides when it is the scarcer resource.
  assert.equal(chooseHost(loads, { vcpus: 1, memoryMb: 3000, runtime: 'namespace' }).host.id, 'host-a');
  assert.throws(
    () => chooseHost(loads, { vcpus: 1, memoryMb: 512, runtime: 'firecracker' }),
    /no online host offers the firecracker runtime/,
  );
  assert.throws(() => chooseHost(loads, { vcpus: 1, memoryMb: 512, hostId: 'host-z' }), /host-z.*not online/);
  assert.throws(() => chooseHost(loads, { vcpus: 32, memoryMb: 512, runtime: 'namespace' }), /no online host has room/);
  assert.throws(() => chooseHost([], { vcpus: 1, memoryMb: 512 }), /no host is online/);
});
