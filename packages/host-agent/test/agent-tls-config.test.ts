// A remote agent's TLS, below the live test (control-plane agent-tls.test.ts): the `wrenn agent`
// flags (and its stop timeout), the certificate made once under the data dir (or the operator's
// files), the dual listener speaking h2 and HTTP/1.1 over TLS by ALPN, the pinned client accepting
// that certificate and no other, and the registration client's consistency checks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { listenDual } from '@wrenn/envd/host';
import { AgentTlsError, loadAgentTls } from '../src/auth/agent-tls.js';
import { agentTlsFailure, pinnedTls } from '../src/auth/pinned-tls.js';
import { parseAgentTls, parseStopTimeout } from '../src/cli.js';
import { RegistrationError, registerWithControlPlane } from '../src/registration/register-client.js';

const dir = mkdtempSync(join(tmpdir(), 'wrenn-agent-tls-cfg-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('`wrenn agent` serves TLS by default; files win; off is plain; bad combinations are refused', () => {
  assert.equal(parseAgentTls({}), 'self-signed');
  assert.equal(parseAgentTls({ tls: 'off' }), undefined);
  assert.deepEqual(parseAgentTls({ tlsCert: '/c', tlsKey: '/k' }), { certFile: '/c', keyFile: '/k' });
  assert.throws(() => parseAgentTls({ tlsCert: '/c' }), /go together/);
  assert.throws(() => parseAgentTls({ tls: 'off', tlsCert: '/c', tlsKey: '/k' }), /cannot be combined/);
  assert.throws(() => parseAgentTls({ tls: 'yes' }), /self-signed or off/);
});

test('WRENN_AGENT_STOP_TIMEOUT_MS: 60 s by default, milliseconds of at least 1000, anything else refused', () => {
  assert.equal(parseStopTimeout(undefined), 60_000);
  assert.equal(parseStopTimeout(''), 60_000);
  assert.equal(parseStopTimeout('1000'), 1000);
  assert.equal(parseStopTimeout('90000'), 90_000);
  for (const bad of ['999', '0', '-5', '1e4', '10s', ' 5000', '1234567890'])
    assert.throws(() => parseStopTimeout(bad), /WRENN_AGENT_STOP_TIMEOUT_MS must be milliseconds/, bad);
});

test('the self-signed certificate is made once, its key readable by root only', () => {
  const data = join(dir, 'made');
  const a = loadAgentTls('self-signed', data, '10.0.0.5');
  const b = loadAgentTls('self-signed', data, '10.0.0.5');
  assert.equal(a.leafPem, b.leafPem, 'the second start reuses it');
  assert.equal(statSync(join(data, 'agent-tls', 'agent.key')).mode & 0o777, 0o600);
  assert.match(a.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: a.leafPem }).toString();
  assert.match(text, /IP Address:10\.0\.0\.5/);
  assert.match(text, /CA:FALSE/);
});

test("the operator's files are used as given; what is not a certificate stops the agent with a clear error", () => {
  const made = loadAgentTls('self-signed', join(dir, 'files'), '127.0.0.1');
  const certFile = join(dir, 'files', 'agent-tls', 'agent.crt');
  const keyFile = join(dir, 'files', 'agent-tls', 'agent.key');
  assert.equal(loadAgentTls({ certFile, keyFile }, join(dir, 'unused'), '127.0.0.1').leafPem, made.leafPem);
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, 'hello');
  assert.throws(() => loadAgentTls({ certFile: junk, keyFile }, dir, '127.0.0.1'), AgentTlsError);
  assert.throws(
    () => loadAgentTls({ certFile: join(dir, 'missing.pem'), keyFile }, dir, '127.0.0.1'),
    /cannot be read/,
  );
});

test('one TLS port speaks h2 and HTTP/1.1 by ALPN, and a pinned client accepts only its certificate', async (t) => {
  const mine = loadAgentTls('self-signed', join(dir, 'listener'), '127.0.0.1');
  const other = loadAgentTls('self-signed', join(dir, 'other'), '127.0.0.1');
  const listener = await listenDual(
    (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`v${req.httpVersion}`);
    },
    { host: '127.0.0.1', port: 0, tls: { cert: mine.cert, key: mine.key } },
  );
  t.after(() => listener.close());
  const url = `https://127.0.0.1:${listener.port}`;

  const h1 = (pem: string) =>
    new Promise<string>((resolve, reject) => {
      const req = https.get(`${url}/`, { ...pinnedTls(pem), agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
    });
  assert.equal(await h1(mine.leafPem), 'v1.1');
  const refused = await h1(other.leafPem).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(refused, 'another certificate is refused');
  assert.match(agentTlsFailure(refused, url) ?? '', /did not present the TLS certificate it registered with/);

  const session = http2.connect(url, pinnedTls(mine.leafPem));
  t.after(() => session.close());
  const body = await new Promise<string>((resolve, reject) => {
    const s = session.request({ ':path': '/' });
    let b = '';
    s.on('data', (d: Buffer) => (b += d));
    s.on('end', () => resolve(b));
    s.on('error', reject);
  });
  assert.equal(body, 'v2.0');

  // Plain HTTP to the TLS port gets no answer from the service.
  const plain = await fetch(`http://127.0.0.1:${listener.port}/`).then(
    (r) => r.status,
    () => 'failed',
  );
  assert.equal(plain, 'failed');
});

test('registration refuses an https:// agent without a certificate, and an http:// one with it', async () => {
  const pem = readFileSync(join(dir, 'made', 'agent-tls', 'agent.crt'), 'utf8');
  const base = { controlPlaneUrl: 'http://127.0.0.1:9', token: 'wrh_x', agentSecret: 's'.repeat(43) };
  await assert.rejects(
    registerWithControlPlane({ ...base, agentUrl: 'https://127.0.0.1:5007' }),
    (e: unknown) => e instanceof RegistrationError && /no certificate was given/.test(e.message),
  );
  await assert.rejects(
    registerWithControlPlane({ ...base, agentUrl: 'http://127.0.0.1:5007', agentTlsCert: pem }),
    (e: unknown) => e instanceof RegistrationError && /advertise https/.test(e.message),
  );
});

test('an agent that registered plain and now serves TLS is told to register again (or --tls off)', async () => {
  const pem = readFileSync(join(dir, 'made', 'agent-tls', 'agent.crt'), 'utf8');
  const stateFile = join(dir, 'registration.json');
  writeFileSync(
    stateFile,
    JSON.stringify({
      hostId: 'host-x',
      controlPlaneUrl: 'http://127.0.0.1:9',
      agentUrl: 'http://127.0.0.1:5007',
      registeredAt: new Date().toISOString(),
    }),
  );
  await assert.rejects(
    registerWithControlPlane({
      controlPlaneUrl: 'http://127.0.0.1:9',
      agentUrl: 'https://127.0.0.1:5007',
      agentSecret: 's'.repeat(43),
      agentTlsCert: pem,
      stateFile,
    }),
    (e: unknown) =>
      e instanceof RegistrationError && /registered as http:.* now serves https:.*--token.*--tls off/.test(e.message),
  );
});
