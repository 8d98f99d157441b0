// The one certificate maker (src/tls/certificates.ts) behind the agent's self-signed certificate and
// the control plane's local CA: what it makes is what a TLS client checks (extensions, names, the
// CA's signature), keys are 0600, nothing half-made stays behind, and failures say why.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  CA_EXTENSIONS,
  CertificateError,
  makeCertificate,
  readPem,
  serverExtensions,
} from '../src/tls/certificates.js';

const dir = mkdtempSync(join(tmpdir(), 'wrenn-tls-certs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a self-signed server certificate names its hosts, is no CA, and its key is 0600', () => {
  const certFile = join(dir, 'self.crt');
  const keyFile = join(dir, 'self.key');
  makeCertificate({
    certFile,
    keyFile,
    subject: '/CN=self',
    days: 3,
    extensions: serverExtensions(['DNS:localhost', 'IP:10.0.0.5']),
  });
  const c = new X509Certificate(readFileSync(certFile));
  assert.equal(c.ca, false);
  assert.equal(c.checkHost('localhost'), 'localhost');
  assert.equal(c.checkIP('10.0.0.5'), '10.0.0.5');
  assert.equal(c.checkIP('10.0.0.6'), undefined);
  assert.ok(c.checkPrivateKey(createPrivateKey(readFileSync(keyFile))));
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir).sort(), ['self.crt', 'self.key'], 'no temporary file is left');
});

test('a CA signs a server certificate that verifies against it and names the domain', () => {
  const ca = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  makeCertificate({ ...ca, subject: '/CN=test CA', days: 3, extensions: CA_EXTENSIONS });
  const leaf = { certFile: join(dir, 'leaf.crt'), keyFile: join(dir, 'leaf.key') };
  makeCertificate({
    ...leaf,
    subject: '/CN=*.example.test',
    days: 3,
    extensions: serverExtensions(['DNS:*.example.test', 'DNS:api.example.test']),
    signedBy: ca,
  });
  const caCert = new X509Certificate(readFileSync(ca.certFile));
  const leafCert = new X509Certificate(readFileSync(leaf.certFile));
  assert.equal(caCert.ca, true);
  assert.ok(leafCert.checkIssued(caCert));
  assert.ok(leafCert.verify(caCert.publicKey));
  assert.ok(leafCert.checkHost('api.example.test'));
  assert.equal(leafCert.checkHost('example.org'), undefined);
  // A second leaf gets another serial (no serial file shared between them).
  const other = { certFile: join(dir, 'leaf2.crt'), keyFile: join(dir, 'leaf2.key') };
  makeCertificate({ ...other, subject: '/CN=x', days: 3, extensions: serverExtensions(['DNS:x.test']), signedBy: ca });
  assert.notEqual(new X509Certificate(readFileSync(other.certFile)).serialNumber, leafCert.serialNumber);
});

test('failures are CertificateErrors that say why, and leave no file behind', () => {
  const sub = mkdtempSync(join(dir, 'fail-'));
  const bad = { certFile: join(sub, 'x.crt'), keyFile: join(sub, 'x.key') };
  assert.throws(
    () => makeCertificate({ ...bad, subject: 'no slash', days: 3, extensions: CA_EXTENSIONS }),
    (err: Error) => err instanceof CertificateError && /openssl req failed/.test(err.message),
  );
  assert.throws(
    () =>
      makeCertificate({
        ...bad,
        subject: '/CN=x',
        days: 3,
        extensions: CA_EXTENSIONS,
        signedBy: { certFile: join(sub, 'missing.crt'), keyFile: join(sub, 'missing.key') },
      }),
    /openssl x509 failed/,
  );
  assert.deepEqual(readdirSync(sub), []);
  assert.throws(
    () => makeCertificate({ ...bad, subject: '/CN=x', days: 0, extensions: CA_EXTENSIONS }),
    CertificateError,
  );
  assert.throws(() => serverExtensions([]), CertificateError);
  const junk = join(sub, 'junk.pem');
  writeFileSync(junk, 'hello');
  assert.throws(() => readPem(junk, 'certificate'), /is not a PEM file/);
  assert.throws(() => readPem(join(sub, 'none.pem'), 'key'), /TLS key .* cannot be read/);
});
