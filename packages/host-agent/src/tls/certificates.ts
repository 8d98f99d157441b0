// Keys and certificates made with Debian's openssl CLI, in one place for every TLS endpoint Wrenn
// makes its own certificate for: the remote host agent's self-signed one (auth/agent-tls.ts) and
// the control plane's local CA with its domain certificate (control-plane tls/certificates.ts);
// tests make impostors with it. It owns the key type (P-256), the extensions of a CA and of a
// server certificate, files that appear whole or not at all (keys 0600), the PEM check of an
// operator's files and how an openssl failure reads. The egress proxy's CA (async, per request)
// keeps its own calls.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/** A certificate or key that cannot be made or used (the message says which file and why). */
export class CertificateError extends Error {
  override name = 'CertificateError';
}

/** What a CA certificate may do: sign certificates (and revocation lists), nothing else. */
export const CA_EXTENSIONS = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];

/** A TLS server's leaf certificate for these subjectAltNames (e.g. DNS:localhost, IP:127.0.0.1). */
export function serverExtensions(altNames: string[]): string[] {
  if (!altNames.length) throw new CertificateError('a server certificate needs at least one subjectAltName');
  return [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${altNames.join(',')}`,
  ];
}

export interface NewCertificate {
  keyFile: string;
  certFile: string;
  /** openssl's -subj, e.g. /CN=wrenn host agent */
  subject: string;
  days: number;
  /** One openssl extension a line (CA_EXTENSIONS, serverExtensions(...)). */
  extensions: string[];
  /** The CA that signs it; self-signed without. */
  signedBy?: { certFile: string; keyFile: string };
}

/**
 * A new P-256 key (mode 0600) and its certificate. Both are written under temporary names and
 * renamed into place, so a start that dies half-way leaves no key without its certificate.
 */
export function makeCertificate(o: NewCertificate): void {
  if (!Number.isInteger(o.days) || o.days < 1) throw new CertificateError(`days must be a whole number >= 1`);
  const tmp = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const [key, cert, csr, ext] = [
    `${o.keyFile}${tmp}`,
    `${o.certFile}${tmp}`,
    `${o.certFile}${tmp}.csr`,
    `${o.certFile}${tmp}.ext`,
  ];
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', o.subject];
  try {
    if (!o.signedBy) {
      const addext = o.extensions.flatMap((e) => ['-addext', e]);
      openssl(['req', '-x509', ...newKey, '-out', cert, '-days', String(o.days), ...addext]);
    } else {
      openssl(['req', '-new', ...newKey, '-out', csr]);
      writeFileSync(ext, `${o.extensions.join('\n')}\n`);
      const ca = [
        '-CA',
        o.signedBy.certFile,
        '-CAkey',
        o.signedBy.keyFile,
        '-set_serial',
        `0x${randomBytes(12).toString('hex')}`,
      ];
      openssl(['x509', '-req', '-in', csr, ...ca, '-out', cert, '-days', String(o.days), '-extfile', ext]);
    }
    chmodSync(key, 0o600);
    renameSync(key, o.keyFile);
    renameSync(cert, o.certFile);
  } finally {
    for (const f of [key, cert, csr, ext]) rmSync(f, { force: true });
  }
}

/** Runs openssl; a failure becomes a CertificateError quoting what openssl said. */
export function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new CertificateError(
      `openssl ${args[0]} failed: ${stderr || (err as Error).message} (is Debian's openssl installed?)`,
    );
  }
}

/** An operator's PEM file (a certificate or key, `what` says which), read once. */
export function readPem(file: string, what: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new CertificateError(`TLS ${what} ${file} cannot be read: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new CertificateError(`TLS ${what} ${file} is not a PEM file`);
  return pem;
}
