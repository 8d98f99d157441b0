// A test CA and a server certificate it signs for one IP address, as an operator brings them to
// `wrenn server --tls-cert/--tls-key`: made by @wrenn/host-agent/tls (the module that makes Wrenn's
// own certificates), so no test restates the openssl calls. Used by agent-registration-https and
// cluster/agent-cli.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CA_EXTENSIONS, makeCertificate, serverExtensions } from '@wrenn/host-agent/tls';

export interface OperatorCertificate {
  /** The CA's certificate: what clients are given to trust (ca.crt in `dir`). */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** ca.crt/ca.key and cp.crt/cp.key in `dir`: the CA, and a certificate for `ip` it signed (2 days). */
export function operatorCertificate(dir: string, ip: string): OperatorCertificate {
  if (!isIP(ip)) throw new Error(`operatorCertificate: "${ip}" is not an IP address`);
  const ca = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  makeCertificate({ ...ca, subject: '/CN=test CA', days: 2, extensions: CA_EXTENSIONS });
  const server = { certFile: join(dir, 'cp.crt'), keyFile: join(dir, 'cp.key') };
  makeCertificate({
    ...server,
    subject: `/CN=${ip}`,
    days: 2,
    extensions: serverExtensions([`IP:${ip}`]),
    signedBy: ca,
  });
  return { caFile: ca.certFile, ...server };
}
