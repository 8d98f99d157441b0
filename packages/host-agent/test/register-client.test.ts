// The agent-side registration client's own failures: bad URLs, no token, a control plane that
// does not answer, a refusal; and that a remembered registration needs no token. (Registration
// that succeeds end to end is in the control plane's hosts-cluster.test.ts.)

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistrationError, registerWithControlPlane } from '../src/registration/register-client.js';

const agentSecret = 's'.repeat(43);

test('refuses URLs that are not base URLs', async () => {
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: 'cp:8080',
      token: 't',
      agentUrl: 'http://127.0.0.1:5007',
      agentSecret,
    }),
    /controlPlaneUrl .* must be a base URL/,
  );
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: 'http://127.0.0.1:8080',
      token: 't',
      agentUrl: 'http://127.0.0.1:5007/x',
      agentSecret,
    }),
    /agentUrl .* must be a base URL/,
  );
});

test('without a token and without a remembered registration it says what to do', async () => {
  await assert.rejects(
    registerWithControlPlane({ controlPlaneUrl: 'http://127.0.0.1:9', agentUrl: 'http://127.0.0.1:5007', agentSecret }),
    /pass --token/,
  );
});

test('a control plane that does not answer is reported after the retries', async () => {
  // Bind and close a port so nothing listens on it.
  const srv = http.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: `http://127.0.0.1:${port}`,
      token: 'wrh_x',
      agentUrl: 'http://127.0.0.1:5007',
      agentSecret,
      attempts: 2,
    }),
    (e: unknown) => e instanceof RegistrationError && /cannot reach the control plane/.test(e.message),
  );
});

test("a refusal carries the control plane's status and message; a remembered registration is reused", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-regclient-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let hits = 0;
  const srv = http.createServer((req, res) => {
    hits++;
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const parsed = JSON.parse(body) as { token: string; address: string; agent_secret: string };
      assert.equal(req.url, '/v1/hosts/register');
      assert.equal(parsed.address, 'http://127.0.0.1:5007');
      assert.equal(parsed.agent_secret, agentSecret, "the agent's secret goes with the token");
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { code: 'unauthenticated', message: 'host registration token is invalid, expired or already used' },
        }),
      );
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const cp = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: cp,
      token: 'wrh_spent',
      agentUrl: 'http://127.0.0.1:5007/',
      agentSecret,
    }),
    (e: unknown) => e instanceof RegistrationError && e.status === 401 && /already used/.test(e.message),
  );
  assert.equal(hits, 1);

  const stateFile = join(dir, 'control-plane.json');
  writeFileSync(
    stateFile,
    JSON.stringify({
      hostId: 'host-abc',
      controlPlaneUrl: cp,
      agentUrl: 'http://127.0.0.1:5007',
      registeredAt: new Date().toISOString(),
      agentSecretSha256: createHash('sha256').update(agentSecret).digest('hex'),
    }),
  );
  const reg = await registerWithControlPlane({
    controlPlaneUrl: `${cp}/`,
    agentUrl: 'http://127.0.0.1:5007',
    agentSecret,
    stateFile,
  });
  assert.deepEqual([reg.hostId, reg.reused], ['host-abc', true]);
  assert.equal(hits, 1, 'no request: nothing spent');
  // The agent's secret changed since: the control plane holds the old one, so a new registration is needed.
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: cp,
      agentUrl: 'http://127.0.0.1:5007',
      agentSecret: 't'.repeat(43),
      stateFile,
    }),
    /secret changed since it registered.*pass --token/,
  );
  // Registered with another control plane: a token is needed again.
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: 'http://127.0.0.1:9',
      agentUrl: 'http://127.0.0.1:5007',
      agentSecret,
      stateFile,
    }),
    /pass --token/,
  );
});
