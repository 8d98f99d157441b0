// The agent → control plane direction over TLS: `wrenn agent --control-plane https://…` reaches a
// control plane serving HTTPS when given its CA (--control-plane-ca), and without it says what to
// pass. The control plane is real, with an operator's certificate (--tls-cert) for 127.0.0.1 from
// a CA made here; the token is made up, so an answer of 401 is the proof that the TLS connection
// was verified and the request reached the registration route.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RegistrationError, registerWithControlPlane } from '@wrenn/host-agent';
import { type RunningControlPlane, startControlPlane } from '../src/server.js';

let cp: RunningControlPlane;
let dataDir: string;
let caFile: string;

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl, as an operator would). */
function makeCertificates(dir: string): { caFile: string; certFile: string; keyFile: string } {
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=test CA']);
  ssl(['req', ...ec, '-keyout', f('cp.key'), '-out', f('cp.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(f('ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  ssl(
    ['x509', '-req', '-in', f('cp.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial'].concat([
      '-out',
      f('cp.crt'),
      '-days',
      '2',
      '-extfile',
      f('ext'),
    ]),
  );
  return { caFile: f('ca.crt'), certFile: f('cp.crt'), keyFile: f('cp.key') };
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'wrenn-cp-https-'));
  const certs = makeCertificates(dataDir);
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
