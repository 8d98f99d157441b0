// Hostile probe: the host agent's service answers nobody without its secret. A local user
// (uid 65534 with curl) and root without the secret get 401 / unauthenticated on every RPC, the
// port proxy, /metrics and upgrades; a wrong secret of the same length is refused; the secret file
// is 0600; listings never carry envd access tokens. A capsule keeps working throughout.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Code, ConnectError } from '@connectrpc/connect';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { createAgentClient } from '../../src/auth/client.js';
import { AGENT_SECRET_HEADER } from '../../src/auth/request-auth.js';
import { leftovers, newDataDir, startTestAgent, type TestAgent, teardown, text } from '../agent-helpers.js';

const NOBODY = 65534;
const execFileP = promisify(execFile);
let dataDir = '';
let t: TestAgent | undefined;
let capsuleId = '';
let envdToken = '';

before(async () => {
  dataDir = newDataDir();
  t = await startTestAgent(dataDir);
  const { capsule } = await t.client.createCapsule({ template: 'minimal', timeoutSec: 300 });
  assert.ok(capsule);
  capsuleId = capsule.id;
  envdToken = capsule.envdAccessToken;
});

after(async () => {
  await teardown(t, dataDir);
  const left = leftovers(dataDir, capsuleId ? [capsuleId] : []);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

const agent = () => {
  if (!t) throw new Error('agent not started');
  return t;
};

/** curl as uid/gid 65534 (asynchronously: the agent answers from this very process): [status, body]. */
async function curlAsNobody(path: string, body: string, headers: string[] = []): Promise<[number, string]> {
  const { stdout } = await execFileP(
    'curl',
    [
      '-sS',
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      ...headers.flatMap((h) => ['-H', h]),
      '--data',
      body,
      `${agent().agent.url}${path}`,
    ],
    { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 },
  );
  const at = stdout.lastIndexOf('\n');
  return [Number(stdout.slice(at + 1)), stdout.slice(0, at)];
}

async function expectUnauthenticated(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a Connect error, got ${String(err)}`);
    assert.equal(err.code, Code.Unauthenticated, `expected unauthenticated, got ${Code[err.code]}: ${err.message}`);
    return true;
  });
}

test('the secret file is 0600 and a local user cannot read it', () => {
  const file = join(dataDir, 'agent-secret');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(agent().agent.secretSource.file, file);
  const r = spawnSync('cat', [file], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
  assert.notEqual(r.status, 0, 'nobody read the agent secret');
  assert.equal(r.stdout, '');
});

test('as nobody with curl: every RPC of the service answers 401 unauthenticated, with where the secret is', async () => {
  const methods = HostAgentService.methods;
  assert.ok(methods.length > 20, 'the service has its methods');
  for (const m of methods) {
    const [status, body] = await curlAsNobody(
      `/${HostAgentService.typeName}/${m.name}`,
      JSON.stringify({ capsuleId, id: capsuleId, cmd: '/bin/id' }),
    );
    assert.equal(status, 401, `${m.name} answered ${status}: ${body}`);
    const parsed = JSON.parse(body) as { code: string; message: string };
    assert.equal(parsed.code, 'unauthenticated', m.name);
    assert.match(parsed.message, /agent-secret/, 'the message says where the secret is');
  }
  // The port proxy, metrics and anything else on the listener are closed too.
  for (const path of [`/proxy/${capsuleId}/49983/health`, '/metrics', '/nope']) {
    const [status] = await curlAsNobody(path, '{}');
    assert.equal(status, 401, path);
  }
  // Not even a Bearer copy of the envd token works, nor the secret as Authorization on /proxy.
  assert.equal(
    (await curlAsNobody(`/${HostAgentService.typeName}/ListCapsules`, '{}', [`authorization: Bearer ${envdToken}`]))[0],
    401,
  );
  assert.equal(
    (
      await curlAsNobody(`/proxy/${capsuleId}/49983/health`, '{}', [`authorization: Bearer ${agent().agent.secret}`])
    )[0],
    401,
    '/proxy takes only its own header',
  );
});

test('as root without the secret and with a wrong one of the same length: unauthenticated', async () => {
  const secret = agent().agent.secret;
  const wrong = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
  assert.equal(wrong.length, secret.length);
  for (const c of [
    createAgentClient(agent().agent.url, ''),
    createAgentClient(agent().agent.url, wrong),
    createAgentClient(agent().agent.url, wrong, { httpVersion: '1.1' }),
  ]) {
    await expectUnauthenticated(c.listCapsules({}));
    await expectUnauthenticated(c.getCapsule({ id: capsuleId, withEnvdAccessToken: true }));
    await expectUnauthenticated(c.exec({ capsuleId, cmd: '/bin/id' }));
    await expectUnauthenticated(c.destroyCapsule({ id: capsuleId }));
    await expectUnauthenticated(c.terminate({}));
    await expectUnauthenticated(
      (async () => {
        for await (const _ of c.execStream({ capsuleId, cmd: '/bin/id' })) {
          // nothing may arrive
        }
      })(),
    );
  }
  // An upgrade (WebSocket to a capsule port) without the secret is refused on the raw socket.
  const answer = await new Promise<string>((resolve, reject) => {
    const s = net.connect(agent().agent.port, '127.0.0.1', () =>
      s.write(
        `GET /proxy/${capsuleId}/49983/ HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n${AGENT_SECRET_HEADER}: ${wrong}\r\n\r\n`,
      ),
    );
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 401/);
  // /health stays open and tells nothing but the host id.
  const health = await fetch(`${agent().agent.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(Object.keys((await health.json()) as object).sort(), ['hostId', 'status']);
});

test('with the secret everything works; envd tokens only on explicit request', async () => {
  const c = agent().client;
  const list = await c.listCapsules({});
  const mine = list.capsules.find((x) => x.id === capsuleId);
  assert.ok(mine, 'the capsule is listed');
  assert.equal(mine.envdAccessToken, '', 'ListCapsules carries no envd token');
  assert.equal(
    (await c.getCapsule({ id: capsuleId })).capsule?.envdAccessToken,
    '',
    'GetCapsule without asking carries none',
  );
  const asked = (await c.getCapsule({ id: capsuleId, withEnvdAccessToken: true })).capsule?.envdAccessToken;
  assert.ok(asked && asked === envdToken, 'asked for, the token is the one CreateCapsule returned');
  const r = await c.exec({ capsuleId, cmd: '/bin/sh', args: ['-c', 'echo still here'] });
  assert.equal(text(r.stdout), 'still here\n', 'the capsule kept working through the probes');
  // The port proxy with the dedicated header reaches envd, and the header never reaches the capsule's server.
  const res = await fetch(`${agent().agent.url}/proxy/${capsuleId}/49983/health`, {
    headers: { [AGENT_SECRET_HEADER]: agent().agent.secret },
  });
  assert.ok(res.status === 200 || res.status === 204, `proxy with the secret: ${res.status}`);
});
