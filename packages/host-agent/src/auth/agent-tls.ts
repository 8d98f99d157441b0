// The certificate a remote host agent serves its Connect port with. No external CA is needed: the
// agent sends its certificate with its registration (the one-time token authenticates that call)
// and the control plane pins it (pinned-tls.ts), so a self-signed one made here at first start is
// as good as any. An operator's own files (--tls-cert/--tls-key) work the same way: whatever
// certificate is served is the one pinned. Made by tls/certificates.ts (openssl), like the control
// plane's local CA; kept under <dataDir>/agent-tls (key mode 0600), read once at start.
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CertificateError, makeCertificate, readPem, serverExtensions } from '../tls/certificates.js';

/** Where the agent's certificate comes from: one made (once) under the data dir, or the operator's files. */
export type AgentTlsSource = 'self-signed' | { certFile: string; keyFile: string };

export interface AgentTlsMaterial {
  /** PEM as served (the leaf first, then any chain). */
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate alone (PEM): what the agent registers and the control plane pins. */
  leafPem: string;
  /** Its SHA-256 fingerprint, colon-separated upper-case hex (X509Certificate.fingerprint256). */
  fingerprint256: string;
}

/** What stops an agent's TLS: an operator's file that cannot be used, or no certificate made. */
export class AgentTlsError extends CertificateError {
  override name = 'AgentTlsError';
}

export const AGENT_TLS_DIR = 'agent-tls';

export function loadAgentTls(source: AgentTlsSource, dataDir: string, listenHost: string): AgentTlsMaterial {
  const files = source === 'self-signed' ? ensureSelfSigned(join(dataDir, AGENT_TLS_DIR), listenHost) : source;
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readPem(files.certFile, 'certificate');
    key = readPem(files.keyFile, 'key');
  } catch (err) {
    throw err instanceof CertificateError ? new AgentTlsError(err.message) : err;
  }
  const leafPem = firstCertificate(cert.toString('utf8'), files.certFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (err) {
    throw new AgentTlsError(`TLS certificate ${files.certFile} cannot be parsed: ${(err as Error).message}`);
  }
  if (Date.parse(leaf.validTo) < Date.now())
    throw new AgentTlsError(`TLS certificate ${files.certFile} expired on ${leaf.validTo}; give a current one`);
  return { cert, key, leafPem, fingerprint256: leaf.fingerprint256 };
}

function firstCertificate(pem: string, file: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new AgentTlsError(`TLS certificate ${file} holds no certificate (-----BEGIN CERTIFICATE-----)`);
  return `${m[0]}\n`;
}

/**
 * A P-256 key and a ten-year self-signed server certificate, made once. Its names do not matter to
 * the control plane (it pins the certificate, not a name); they are the listen address and
 * localhost so other clients given the file as a CA can use it too.
 */
function ensureSelfSigned(dir: string, listenHost: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'agent.crt');
  const keyFile = join(dir, 'agent.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    chmodSync(keyFile, 0o600);
    return { certFile, keyFile };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const names = new Set(['DNS:localhost', 'IP:127.0.0.1']);
  if (isIP(listenHost) && listenHost !== '0.0.0.0' && listenHost !== '::') names.add(`IP:${listenHost}`);
  else if (/^[a-z0-9.-]{1,253}$/i.test(listenHost) && !isIP(listenHost)) names.add(`DNS:${listenHost}`);
  try {
    makeCertificate({
      keyFile,
      certFile,
      subject: '/CN=wrenn host agent',
      days: 3650,
      extensions: serverExtensions([...names]),
    });
  } catch (err) {
    throw new AgentTlsError(
      `cannot make the agent's self-signed certificate (${(err as Error).message}); install openssl or pass --tls-cert/--tls-key`,
    );
  }
  return { certFile, keyFile };
}
