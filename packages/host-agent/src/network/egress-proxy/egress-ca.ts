// The egress proxy's certificate authority, for `rules` on HTTPS: the proxy terminates a capsule's
// TLS to a domain with rules using a certificate for that name signed here, and capsules with rules
// trust this CA (its certificate is added to their trust store; see SECURITY.md). One CA per agent,
// created at first use under <dataDir>/egress-ca with Debian's openssl (the key is 0600, root's,
// and never enters a capsule); one leaf key for every name, certificates made on demand and kept
// in memory. The CA only signs names some capsule of this host has a rule for.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { promisify } from 'node:util';
import { parseDomainPattern } from '@wrenn/protocol';

const execFileP = promisify(execFile);
const openssl = (args: string[]) => execFileP('openssl', args, { timeout: 15_000 });

export interface EgressCa {
  /** The CA certificate (PEM) that capsules with rules trust. */
  certPem: string;
  /** A TLS context for `host` (a name, not a pattern), signed by the CA; cached. */
  contextFor(host: string): Promise<SecureContext>;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export async function loadEgressCa(dataDir: string): Promise<EgressCa> {
  const dir = join(dataDir, 'egress-ca');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caKey = join(dir, 'ca.key');
  const caCrt = join(dir, 'ca.crt');
  const leafKey = join(dir, 'leaf.key');
  if (!existsSync(caCrt) || !existsSync(caKey)) {
    await openssl([
      ...['req', '-x509', ...EC, '-days', '3650', '-keyout', caKey, '-out', caCrt],
      ...['-subj', `/O=Wrenn/CN=Wrenn egress proxy CA (${hostname().slice(0, 40)})`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ]);
    await chmod(caKey, 0o600);
  }
  if (!existsSync(leafKey)) {
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', leafKey]);
    await chmod(leafKey, 0o600);
  }
  const certPem = await readFile(caCrt, 'utf8');
  const key = await readFile(leafKey, 'utf8');
  const cache = new Map<string, Promise<SecureContext>>();

  async function sign(host: string): Promise<SecureContext> {
    // Only a name the contract accepts reaches openssl's command line.
    const { domain } = parseDomainPattern(host);
    const tmp = join(dir, `.${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(`${tmp}.ext`, `subjectAltName=DNS:${domain}\nextendedKeyUsage=serverAuth\n`);
      await openssl(['req', '-new', '-key', leafKey, '-subj', `/CN=${domain}`, '-out', `${tmp}.csr`]);
      await openssl([
        ...['x509', '-req', '-in', `${tmp}.csr`, '-CA', caCrt, '-CAkey', caKey, '-set_serial'],
        ...[`0x${randomBytes(12).toString('hex')}`, '-days', '30', '-extfile', `${tmp}.ext`, '-out', `${tmp}.crt`],
      ]);
      const cert = await readFile(`${tmp}.crt`, 'utf8');
      return createSecureContext({ key, cert: `${cert}${certPem}` });
    } finally {
      await Promise.all(['.ext', '.csr', '.crt'].map((x) => rm(`${tmp}${x}`, { force: true })));
    }
  }

  return {
    certPem,
    contextFor(host) {
      let p = cache.get(host);
      if (!p) {
        p = sign(host);
        p.catch(() => cache.delete(host));
        cache.set(host, p);
      }
      return p;
    },
  };
}

/**
 * A shell script (run as root inside a capsule with the CA's PEM as $0) that makes the capsule
 * trust the CA: Debian's local CA directory and the bundle OpenSSL, curl and Python read. Templates
 * without a bundle are left alone (exit 0): their clients then refuse the proxy's certificate.
 */
export const TRUST_CA_SCRIPT = `set -e
[ -d /etc/ssl/certs ] || exit 0
mkdir -p /usr/local/share/ca-certificates
printf '%s\\n' "$0" > /usr/local/share/ca-certificates/wrenn-egress-ca.crt
b=/etc/ssl/certs/ca-certificates.crt
if [ -f "$b" ] && ! grep -qF "$(printf '%s' "$0" | sed -n 2p)" "$b"; then printf '%s\\n' "$0" >> "$b"; fi`;
