// Hostile probes across teams: with team A's API key or envd token, every route that could touch
// team B's capsule (native /v1, E2B /sandboxes, the sandbox proxy by header, host and path, envd,
// files, processes, snapshots, lifecycle, metrics, logs) is refused and shows nothing of B; from
// inside A's capsule, as root and as the default user, B's capsule, the host agent, the control
// plane and the host's own addresses are unreachable and the metadata endpoint answers only A.
// Team B's capsule keeps working throughout.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { PROBE, type Reply, type Team, TwoTeams, type Who } from './two-teams.js';

const ENVD_PORT = 49983;
/** The domain startLive serves capsule hosts under (`<port>-<id>.localhost`). */
const DOMAIN = 'localhost';

/** A's view must not contain any of B's secrets. */
function assertNoLeak(b: Team, what: string, text: string): void {
  assert.ok(!text.includes(b.secret), `${what} shows team B's secret: ${text.slice(0, 300)}`);
  assert.ok(!text.includes(b.capsule.envdToken), `${what} shows team B's envd token: ${text.slice(0, 300)}`);
}

/** A refusal that says "no such thing" or "not yours" (404 or 403). */
function assertRefused(b: Team, what: string, r: Reply): void {
  assert.ok(r.status === 404 || r.status === 403, `${what}: expected 404/403, got ${r.status} ${r.text.slice(0, 300)}`);
  assertNoLeak(b, what, r.text);
}

/** Opens a WebSocket and reports how the server answered the upgrade. */
function wsAnswer(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

interface ProxyInit {
  method: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** A Connect streaming request body: one enveloped JSON message. */
function connectEnvelope(msg: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(msg));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** Refused by envd: 401/403, or for a streaming RPC the end-of-stream error "unauthenticated". */
function envdRefused(r: { status: number; text: string }): boolean {
  return r.status === 401 || r.status === 403 || (r.status === 200 && r.text.includes('"unauthenticated"'));
}

/** One request through the sandbox proxy to `capsuleId`'s envd, routed the way `how` says. */
async function viaProxy(
  url: string,
  how: 'header' | 'host' | 'path',
  capsuleId: string,
  path: string,
  init: ProxyInit,
): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  let target = `${url}${path}`;
  if (how === 'header') {
    headers['e2b-sandbox-id'] = capsuleId;
    headers['e2b-sandbox-port'] = String(ENVD_PORT);
  } else if (how === 'host') {
    headers.host = `${ENVD_PORT}-${capsuleId}.${DOMAIN}`;
  } else {
    target = `${url}/proxy/${capsuleId}/${ENVD_PORT}${path}`;
  }
  // fetch() will not send a Host header of our choosing; node:http will.
  const { request } = await import('node:http');
  const u = new URL(target);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: Number(u.port),
        path: u.pathname + u.search,
        method: init.method,
        headers,
        agent: false,
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`proxy request ${how} ${path} timed out`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('security: team A cannot reach team B (namespace runtime, two teams)', () => {
  let t: TwoTeams;
  let a: Team;
  let b: Team;
  let bSnapshot: string;

  before(async () => {
    t = await TwoTeams.start();
    a = t.a;
    b = t.b;
    // Team B also owns a snapshot (a template A must not see or use).
    bSnapshot = `sec-b-snap-${Date.now().toString(36)}`;
    const s = await t.call(b, 'POST', '/v1/snapshots', { capsule_id: b.capsule.id, name: bSnapshot });
    assert.equal(s.status, 201, `team B snapshot: ${s.text}`);
    const st = await t.state(b);
    if (st.state === 'paused')
      assert.equal((await t.call(b, 'POST', `/v1/capsules/${b.capsule.id}/resume`, {})).status, 200);
  });
  after(async () => {
    // The snapshot lives in the shared template cache: team B deletes it.
    if (t && bSnapshot) await t.call(t.b, 'DELETE', `/v1/snapshots/${bSnapshot}`).catch(() => undefined);
    await t?.close();
  });

  it("native /v1 API: every route on team B's capsule answers 404 to team A's key and shows nothing of B", async () => {
    const B = `/v1/capsules/${b.capsule.id}`;
    const calls: Array<[string, string, unknown?]> = [
      ['GET', B],
      ['POST', `${B}/pause`, {}],
      ['POST', `${B}/resume`, {}],
      ['POST', `${B}/ping`, {}],
      ['POST', `${B}/timeout`, { timeout_sec: 30 }],
      ['POST', `${B}/exec`, { cmd: 'cat /root/secret', user: 'root' }],
      ['POST', `${B}/exec`, { cmd: 'cat /home/user/secret' }],
      ['GET', `${B}/metrics`],
      ['GET', `${B}/events`],
      ['GET', `${B}/files?path=/root/secret`],
      ['GET', `${B}/files?path=/home/user/secret`],
      ['PUT', `${B}/files?path=/home/user/planted`, Buffer.from('from team A')],
      ['GET', `${B}/files/list?path=/`],
      ['POST', `${B}/files/mkdir`, { path: '/home/user/planted-dir' }],
      ['POST', `${B}/files/move`, { from: '/home/user/secret', to: '/tmp/moved' }],
      ['GET', `${B}/files/stat?path=/home/user/secret`],
      ['DELETE', `${B}/files?path=/home/user/secret`],
      ['GET', `${B}/processes`],
      ['GET', `${B}/commands`],
      ['DELETE', `${B}/processes/1`],
      ['POST', `${B}/processes/1/stdin`, { close: true }],
      ['POST', '/v1/snapshots', { capsule_id: b.capsule.id, name: 'stolen-by-a' }],
      ['DELETE', `/v1/snapshots/${bSnapshot}`],
      ['DELETE', `/v1/templates/${bSnapshot}`],
      ['DELETE', B],
    ];
    for (const [method, path, body] of calls)
      assertRefused(b, `A: ${method} ${path}`, await t.call(a, method, path, body));

    const ws = t.url.replace(/^http/, 'ws');
    for (const path of [`${B}/exec/stream`, `${B}/pty`, `${B}/files/watch?path=/`, `${B}/processes/1/connect`]) {
      const r = await wsAnswer(`${ws}${path}`, { 'x-api-key': a.key });
      assert.ok(
        r.status === 404 || r.status === 403,
        `A: WebSocket ${path}: expected 404/403, got ${r.status} ${r.body}`,
      );
      assertNoLeak(b, `A: WebSocket ${path}`, r.body);
    }

    // Lists are A's alone.
    for (const path of ['/v1/capsules', '/v1/snapshots', '/v1/templates', '/v1/api-keys']) {
      const r = await t.call(a, 'GET', path);
      assert.equal(r.status, 200, `A: GET ${path}: ${r.text}`);
      assert.ok(!r.text.includes(b.capsule.id), `A: GET ${path} lists team B's capsule`);
      assert.ok(!r.text.includes(bSnapshot), `A: GET ${path} lists team B's snapshot`);
      assertNoLeak(b, `A: GET ${path}`, r.text);
    }
    const fromB = await t.call(a, 'POST', '/v1/capsules', { template: bSnapshot, timeout_sec: 60 });
    assert.ok(
      fromB.status === 404 || fromB.status === 403,
      `A: create from team B's snapshot: ${fromB.status} ${fromB.text}`,
    );

    // Nothing of the above touched B: its files, state and snapshot are as they were.
    assert.equal((await t.state(b)).state, 'running');
    assert.equal(
      await t.mustRun(
        b,
        'root',
        'cat /home/user/secret; ls /home/user/planted /home/user/planted-dir /tmp/moved 2>/dev/null; true',
      ),
      `${b.secret}\n`,
    );
    assert.equal(
      (await t.call(b, 'GET', `/v1/templates`)).text.includes(bSnapshot),
      true,
      'team B still has its snapshot',
    );
  });

  it("E2B API: every /sandboxes route on team B's sandbox answers 404 to team A's key and shows nothing of B", async () => {
    const S = `/sandboxes/${b.capsule.id}`;
    const calls: Array<[string, string, unknown?]> = [
      ['GET', S],
      ['GET', `${S}/metrics`],
      ['GET', `${S}/logs`],
      ['GET', `/v2${S}/logs`],
      ['POST', `${S}/pause`, {}],
      ['POST', `${S}/resume`, {}],
      ['POST', `${S}/connect`, { timeout: 60 }],
      ['POST', `/v2${S}/connect`, { timeout: 60 }],
      ['POST', `${S}/timeout`, { timeout: 30 }],
      ['POST', `${S}/refreshes`, {}],
      ['POST', `${S}/snapshots`, {}],
      ['DELETE', `/templates/${bSnapshot}`],
      ['DELETE', S],
    ];
    for (const [method, path, body] of calls)
      assertRefused(b, `A: ${method} ${path}`, await t.call(a, method, path, body));
    for (const path of [
      '/sandboxes',
      '/v2/sandboxes',
      '/snapshots',
      `/snapshots?sandboxID=${b.capsule.id}`,
      '/templates',
      `/sandboxes/metrics?sandbox_ids=${b.capsule.id}`,
    ]) {
      const r = await t.call(a, 'GET', path);
      assert.ok(r.status === 200 || r.status === 404, `A: GET ${path}: ${r.status} ${r.text}`);
      assert.ok(
        !r.text.includes(`"${b.capsule.id}"`) || r.status === 404,
        `A: GET ${path} lists team B's sandbox: ${r.text}`,
      );
      assert.ok(!r.text.includes(bSnapshot), `A: GET ${path} lists team B's snapshot`);
      assertNoLeak(b, `A: GET ${path}`, r.text);
    }
    const fromB = await t.call(a, 'POST', '/sandboxes', { templateID: bSnapshot, timeout: 60 });
    assert.ok(
      fromB.status === 404 || fromB.status === 403,
      `A: create a sandbox from team B's snapshot: ${fromB.status} ${fromB.text}`,
    );
    assert.equal((await t.state(b)).state, 'running');
  });

  it("sandbox proxy: envd of team B's capsule refuses team A's envd token (and none) by header, host and path routing", async () => {
    const routes = ['header', 'host', 'path'] as const;
    for (const how of routes) {
      // The routing works: A's token opens A's own envd, B's token B's.
      const own = await viaProxy(t.url, how, a.capsule.id, '/process.Process/List', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-access-token': a.capsule.envdToken },
        body: '{}',
      });
      assert.equal(own.status, 200, `${how} routing, A's token on A: ${own.status} ${own.text}`);
      const bOwn = await viaProxy(t.url, how, b.capsule.id, '/envs', {
        method: 'GET',
        headers: { 'x-access-token': b.capsule.envdToken },
      });
      assert.equal(bOwn.status, 200, `${how} routing, B's token on B: ${bOwn.status} ${bOwn.text}`);
      assert.ok(bOwn.text.includes(b.secret), "B's own token reads B's env (the probe below could see a leak)");

      for (const token of [a.capsule.envdToken, undefined]) {
        const who = token ? "A's envd token" : 'no token';
        const h: Record<string, string> = token ? { 'x-access-token': token } : {};
        const json = { 'content-type': 'application/json', ...h };
        const attempts: Array<[string, ProxyInit]> = [
          ['/process.Process/List', { method: 'POST', headers: json, body: '{}' }],
          [
            '/process.Process/Start',
            {
              method: 'POST',
              headers: { 'content-type': 'application/connect+json', ...h },
              body: connectEnvelope({
                process: { cmd: '/bin/sh', args: ['-c', 'cat /root/secret; echo planted > /home/user/planted-by-a'] },
              }),
            },
          ],
          [
            '/filesystem.Filesystem/ListDir',
            { method: 'POST', headers: json, body: JSON.stringify({ path: '/root' }) },
          ],
          ['/envs', { method: 'GET', headers: h }],
          ['/files?path=/root/secret&username=root', { method: 'GET', headers: h }],
          [
            '/files?path=/home/user/planted-by-a',
            { method: 'POST', headers: { 'content-type': 'application/octet-stream', ...h }, body: 'planted' },
          ],
          ['/init', { method: 'POST', headers: json, body: JSON.stringify({ accessToken: 'taken-over' }) }],
        ];
        for (const [path, init] of attempts) {
          const r = await viaProxy(t.url, how, b.capsule.id, path, init);
          assert.ok(
            envdRefused(r),
            `${how} routing, ${who}, ${init.method} ${path} on B: expected 401/403, got ${r.status} ${r.text.slice(0, 300)}`,
          );
          assertNoLeak(b, `${how} routing, ${who}, ${path}`, r.text);
        }
      }
    }
    // B's envd still takes B's token (the /init attempt changed nothing) and nothing was planted.
    const still = await viaProxy(t.url, 'header', b.capsule.id, '/envs', {
      method: 'GET',
      headers: { 'x-access-token': b.capsule.envdToken },
    });
    assert.equal(still.status, 200, `B's token after the attempts: ${still.status} ${still.text}`);
    assert.equal(
      (await t.run(b, 'root', 'test -e /home/user/planted-by-a')).exit_code,
      1,
      'nothing was written into B',
    );
  });

  for (const who of ['root', 'user'] as Who[]) {
    it(`from inside team A's capsule as ${who}: team B's capsule, the host agent, the control plane and the host's addresses are unreachable`, async (tc) => {
      // A listener on every host address, as any host service would be.
      const server: Server = createServer((s) => s.end('host service\n'));
      await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
      try {
        const hostPort = (server.address() as { port: number }).port;
        const agentPort = t.live.up.agent.port;
        const cpPort = Number(new URL(t.url).port);
        const gateway = (await t.mustRun(a, who, "ip route | awk '/default/ {print $3}'")).trim();
        assert.match(gateway, /^\d+\.\d+\.\d+\.\d+$/, 'the capsule has a default gateway');
        const hostAddrs = Object.values(networkInterfaces())
          .flat()
          .filter((i) => i && i.family === 'IPv4' && !i.internal && !i.address.startsWith('10.248.'))
          .map((i) => i!.address);
        tc.diagnostic(`host addresses probed: ${[gateway, ...hostAddrs].join(', ')}`);

        // The probe can connect at all: A's own envd on its own loopback.
        const self = await t.probe<{ result: string }>(a, who, `connect 127.0.0.1 ${ENVD_PORT} 2000`);
        assert.equal(self.result, 'open', "the probe reaches A's own envd (else the checks below prove nothing)");

        const targets: Array<[string, string, number]> = [
          ["team B's envd", b.capsule.address, ENVD_PORT],
          ["the host agent's service on (the capsule's own) 127.0.0.1", '127.0.0.1', agentPort],
          ["the control plane on (the capsule's own) 127.0.0.1", '127.0.0.1', cpPort],
          ['the host agent via the gateway', gateway, agentPort],
          ['the control plane via the gateway', gateway, cpPort],
          ['a host service via the gateway', gateway, hostPort],
          ...hostAddrs.flatMap(
            (h): Array<[string, string, number]> => [
              [`a host service on ${h}`, h, hostPort],
              [`the host agent on ${h}`, h, agentPort],
            ],
          ),
        ];
        const open: string[] = [];
        for (const [what, ip, port] of targets) {
          const r = await t.probe<{ result: string; error: string }>(a, who, `connect ${ip} ${port} 1500`);
          tc.diagnostic(`${what} (${ip}:${port}): ${r.result}${r.error ? ` (${r.error})` : ''}`);
          if (r.result === 'open') open.push(`${what} (${ip}:${port})`);
        }
        assert.deepEqual(open, [], `reachable from team A's capsule as ${who}`);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    it(`from inside team A's capsule as ${who}: the metadata endpoint answers A's own id and nothing of B`, async () => {
      const id = await t.mustRun(a, who, 'wget -qO- http://169.254.169.254/WRENN_SANDBOX_ID');
      assert.equal(id.trim(), a.capsule.id);
      const all = await t.mustRun(a, who, "wget -qO- --header 'Accept: application/json' http://169.254.169.254/");
      assert.equal(JSON.parse(all).WRENN_SANDBOX_ID, a.capsule.id);
      assert.ok(!all.includes(b.capsule.id), `metadata lists team B's capsule: ${all}`);
      assertNoLeak(b, 'metadata', all);
      const env = await t.mustRun(a, who, 'env');
      assert.ok(env.includes(a.secret) && !env.includes(b.secret), "A's env has A's secret and not B's");
    });
  }

  it("team B's capsule kept working through every probe above", async () => {
    const h = await t.neighbourHealth(b);
    assert.equal(h.kernel.user.fork && h.kernel.root.fork, true);
    assert.equal((await t.state(b)).state, 'running');
    assert.equal(
      await t.mustRun(b, 'root', `${PROBE} connect 127.0.0.1 ${ENVD_PORT} 1000 >/dev/null && cat /root/secret`),
      `${b.secret}\n`,
    );
  });
});
