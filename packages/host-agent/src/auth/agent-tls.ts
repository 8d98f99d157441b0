// The certificate a remote host agent serves its Connect port with. No external CA is needed: the
// agent sends its certificate with its registration (the one-time token authenticates that call)
// and the control plane pins it (pinned-tls.ts), so a self-signed one made here at first start is
// as good as any. An operator's own files (--tls-cert/--tls-key) work the same way: whatever
// certificate is served is the one pinned. Made with Debian's openssl CLI, like the control plane's
// local CA; kept under <dataDir>/agent-tls (key mode 0600), read once at start.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

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

export class AgentTlsError extends Error {
  override name = 'AgentTlsError';
}

export const AGENT_TLS_DIR = 'agent-tls';

export function loadAgentTls(source: AgentTlsSource, dataDir: string, listenHost: string): AgentTlsMaterial {
  const files = source === 'self-signed' ? ensureSelfSigned(join(dataDir, AGENT_TLS_DIR), listenHost) : source;
  const cert = readPem(files.certFile, 'certificate');
  const key = readPem(files.keyFile, 'key');
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

function readPem(file: string, what: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new AgentTlsError(`TLS ${what} ${file} cannot be read: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new AgentTlsError(`TLS ${what} ${file} is not a PEM file`);
  return pem;
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
  const tmpCert = `${certFile}.${process.pid}.tmp`;
  const tmpKey = `${keyFile}.${process.pid}.tmp`;
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        tmpKey,
        '-out',
        tmpCert,
        '-days',
        '3650',
        '-subj',
        '/CN=wrenn host agent',
        '-addext',
        'basicConstraints=critical,CA:FALSE',
        '-addext',
        'keyUsage=critical,digitalSignature',
        '-addext',
        'extendedKeyUsage=serverAuth',
        '-addext',
        `subjectAltName=${[...names].join(',')}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    chmodSync(tmpKey, 0o600);
    renameSync(tmpKey, keyFile);
    renameSync(tmpCert, certFile);
  } catch (err) {
    rmSync(tmpKey, { force: true });
    rmSync(tmpCert, { force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new AgentTlsError(
      `cannot make the agent's self-signed certificate with openssl (${stderr || (err as Error).message}); install openssl or pass --tls-cert/--tls-key`,
    );
  }
  return { certFile, keyFile };
}
