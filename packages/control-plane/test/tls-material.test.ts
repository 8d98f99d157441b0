// The control plane's listener certificate (src/tls/certificates.ts): --tls self-signed makes a
// local CA and a certificate for the domain once (made by @wrenn/host-agent/tls); an operator's
// files that are not PEM, or a domain that is no DNS name, are refused as invalid arguments.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InvalidArgumentError } from '@wrenn/protocol';
import { loadTlsMaterial } from '../src/tls/certificates.js';

const dir = mkdtempSync(join(tmpdir(), 'wrenn-cp-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('self-signed: a local CA and a domain certificate it signed, made once', () => {
  const a = loadTlsMaterial('self-signed', dir, 'wrenn.test');
  assert.ok(a.caFile);
  const ca = new X509Certificate(readFileSync(a.caFile));
  const leaf = new X509Certificate(a.cert);
  assert.equal(ca.ca, true);
  assert.ok(leaf.verify(ca.publicKey), 'the leaf is signed by the CA clients are told to trust');
  for (const host of ['api.wrenn.test', '49983-cl-abc.wrenn.test', 'wrenn.test']) assert.ok(leaf.checkHost(host), host);
  assert.equal(leaf.checkHost('wrenn.example'), undefined);
  assert.equal(statSync(join(dir, 'tls', 'ca.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'tls', 'wrenn.test.key')).mode & 0o777, 0o600);
  const b = loadTlsMaterial('self-signed', dir, 'wrenn.test');
  assert.ok(b.cert.equals(a.cert), 'the second start reuses it');
});

test("an operator's file that is not PEM, or a domain that is no DNS name, is an invalid argument", () => {
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, 'hello');
  assert.throws(
    () => loadTlsMaterial({ certFile: junk, keyFile: junk }, dir, 'wrenn.test'),
    (err: Error) =>
      err instanceof InvalidArgumentError && /TLS certificate .*junk\.pem is not a PEM file/.test(err.message),
  );
  assert.throws(() => loadTlsMaterial({ certFile: join(dir, 'nope'), keyFile: junk }, dir, 'x'), InvalidArgumentError);
  assert.throws(() => loadTlsMaterial('self-signed', dir, 'bad domain;rm'), InvalidArgumentError);
});
