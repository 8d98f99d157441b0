// The certificate the control plane's TLS listener serves: the operator's own files
// (--tls-cert/--tls-key, a wildcard for *.<domain> plus api.<domain>), or, with --tls self-signed, a
// local CA and a certificate for the domain made once under the data dir (the CA is what clients
// trust: NODE_EXTRA_CA_CERTS). Keys, extensions and openssl are the host agent's certificate module
// (@wrenn/host-agent/tls), which makes the agent's own certificate too. Files are read once at start.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CA_EXTENSIONS, CertificateError, makeCertificate, readPem, serverExtensions } from '@wrenn/host-agent/tls';
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
    try {
      return { cert: readPem(source.certFile, 'certificate'), key: readPem(source.keyFile, 'key') };
    } catch (err) {
      throw err instanceof CertificateError ? new InvalidArgumentError(err.message) : err;
    }
  }
  const made = ensureSelfSigned(join(dataDir, 'tls'), domain);
  return { cert: readFileSync(made.certFile), key: readFileSync(made.keyFile), caFile: made.caFile };
}

const DOMAIN_RE = /^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The CA (made once) and a certificate for *.<domain>, api.<domain> and <domain> signed by it. */
export function ensureSelfSigned(dir: string, domain: string): { caFile: string; certFile: string; keyFile: string } {
  if (!DOMAIN_RE.test(domain)) throw new InvalidArgumentError(`domain "${domain}" is not a DNS name`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  if (!existsSync(ca.certFile) || !existsSync(ca.keyFile))
    makeCertificate({ ...ca, subject: '/CN=Wrenn local CA', days: 3650, extensions: CA_EXTENSIONS });
  const certFile = join(dir, `${domain}.crt`);
  const keyFile = join(dir, `${domain}.key`);
  if (!existsSync(certFile) || !existsSync(keyFile))
    makeCertificate({
      certFile,
      keyFile,
      subject: `/CN=*.${domain}`,
      // 825 days: the longest validity clients accept for a server certificate.
      days: 825,
      extensions: serverExtensions([`DNS:*.${domain}`, `DNS:api.${domain}`, `DNS:${domain}`]),
      signedBy: ca,
    });
  return { caFile: ca.certFile, certFile, keyFile };
}
