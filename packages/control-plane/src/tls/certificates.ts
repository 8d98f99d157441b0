// The certificate the control plane's TLS listener serves: the operator's own files
// (--tls-cert/--tls-key, a wildcard for *.<domain> plus api.<domain>), or, with --tls self-signed, a
// local CA and a certificate for the domain made once under the data dir with Debian's openssl CLI
// (the CA is what clients trust: NODE_EXTRA_CA_CERTS). Files are read once at start (no reload).
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '@wrenn/protocol';

/** How the listener gets its certificate: files, or one made here. */
export type TlsSource = { certFile: string; keyFile: string } | 'self-signed';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** The CA clients must trust (self-signed only). */
  caFile?: string;
}

/** Reads the operator's certificate and key, or makes (once) the local CA and the domain's certificate. */
export function loadTlsMaterial(source: TlsSource, dataDir: string, domain: string): TlsMaterial {
  if (source !== 'self-signed') {
    return { cert: readPem(source.certFile, 'certificate'), key: readPem(source.keyFile, 'key') };
  }
  const made = ensureSelfSigned(join(dataDir, 'tls'), domain);
  return { cert: readFileSync(made.certFile), key: readFileSync(made.keyFile), caFile: made.caFile };
}

function readPem(file: string, what: string): Buffer {
  try {
    const pem = readFileSync(file);
    if (!pem.includes('-----BEGIN ')) throw new Error('not PEM');
    return pem;
  } catch (err) {
    throw new InvalidArgumentError(
      `TLS ${what} ${file} cannot be used: ${err instanceof Error ? err.message : String(err)} (a PEM file is needed)`,
    );
  }
}

const DOMAIN_RE = /^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The CA (made once) and a certificate for *.<domain>, api.<domain> and <domain> signed by it. */
export function ensureSelfSigned(dir: string, domain: string): { caFile: string; certFile: string; keyFile: string } {
  if (!DOMAIN_RE.test(domain)) throw new InvalidArgumentError(`domain "${domain}" is not a DNS name`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  if (!existsSync(caFile) || !existsSync(caKey)) {
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      caKey,
      '-out',
      caFile,
      '-days',
      '3650',
      '-subj',
      '/CN=Wrenn local CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    chmodSync(caKey, 0o600);
  }
  const certFile = join(dir, `${domain}.crt`);
  const keyFile = join(dir, `${domain}.key`);
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const csr = join(dir, `${domain}.csr`);
    const ext = join(dir, `${domain}.ext`);
    openssl([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      csr,
      '-subj',
      `/CN=*.${domain}`,
    ]);
    chmodSync(keyFile, 0o600);
    writeFileSync(
      ext,
      `subjectAltName=DNS:*.${domain},DNS:api.${domain},DNS:${domain}\nbasicConstraints=CA:FALSE\n` +
        'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
    );
    // 825 days: the longest validity clients accept for a server certificate.
    openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-out',
      certFile,
      '-days',
      '825',
      '-extfile',
      ext,
    ]);
  }
  return { caFile, certFile, keyFile };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || (err as Error).message} (is Debian's openssl installed?)`);
  }
}
