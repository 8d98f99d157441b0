// The agent → control plane direction over TLS: `wrenn agent --control-plane https://…` reaches a
// control plane serving HTTPS when given its CA (--control-plane-ca), and without it says what to
// pass. The control plane is real, with an operator's certificate (--tls-cert) for 127.0.0.1 from
// a CA made here (operator-certificate.ts); the token is made up, so an answer of 401 is the proof
// that the TLS connection was verified and the request reached the registration route.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RegistrationError, registerWithControlPlane } from '@wrenn/host-agent';
import { type RunningControlPlane, startControlPlane } from '../src/server.js';
import { operatorCertificate } from './operator-certificate.js';

let cp: RunningControlPlane;
let dataDir: string;
let caFile: string;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'wrenn-cp-https-'));
  const certs = operatorCertificate(dataDir, '127.0.0.1');
  caFile = certs.caFile;
  cp = await startControlPlane({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    domain: 'wrenn.test',
    publicUrl: 'https://127.0.0.1',
    logLevel: 'silent',
    stateLoops: false,
    tls: { certFile: certs.certFile, keyFile: certs.keyFile },
  });
});
after(async () => {
  await cp?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const attempt = (controlPlaneCa?: string) =>
  registerWithControlPlane({
    controlPlaneUrl: cp.url,
    token: `wrh_${'x'.repeat(32)}`,
    agentUrl: 'http://127.0.0.1:5007',
    agentSecret: 's'.repeat(43),
    attempts: 1,
    ...(controlPlaneCa ? { controlPlaneCa } : {}),
  }).then(
    () => assert.fail('a made-up token registered'),
    (e: unknown) => e,
  );

test('with the control plane CA the registration reaches the control plane over https', async () => {
  assert.match(cp.url, /^https:\/\/127\.0\.0\.1:/);
  const err = await attempt(readFileSync(caFile, 'utf8'));
  assert.ok(err instanceof RegistrationError);
  assert.equal(err.status, 401, err.message);
  assert.match(err.message, /token is invalid/);
});

test('without it the agent is told to pass --control-plane-ca', async () => {
  const err = await attempt();
  assert.ok(err instanceof RegistrationError);
  assert.equal(err.status, undefined);
  assert.match(err.message, /not trusted: pass --control-plane-ca/);
});
