// How a control plane verifies a host agent that serves TLS: it trusts exactly the certificate the
// agent registered (sent with the one-time token), never a CA and never a name. OpenSSL is given
// that one certificate as its only trust anchor (allowPartialTrustChain lets a CA-issued leaf be
// one too), so another certificate fails the handshake before any request, and with it the agent
// secret, is written; checkServerIdentity then compares the SHA-256 fingerprint, so the pin holds
// even for a leaf whose CA also signed others. A changed certificate therefore needs a new
// registration, and agentTlsFailure() says so in place of OpenSSL's terse codes.
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';

export type PinnedTlsOptions = Pick<
  tls.ConnectionOptions,
  'ca' | 'allowPartialTrustChain' | 'checkServerIdentity' | 'rejectUnauthorized'
>;

export const AGENT_CERT_MISMATCH = 'ERR_WRENN_AGENT_CERT_MISMATCH';

const cache = new Map<string, PinnedTlsOptions>();

/** SHA-256 fingerprint of a PEM certificate (colon-separated hex), or undefined when it is not one. */
export function certificateFingerprint(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return undefined;
  }
}

/** TLS client options that accept only `certPem` (a host's registered certificate). Memoized per certificate. */
export function pinnedTls(certPem: string): PinnedTlsOptions {
  const have = cache.get(certPem);
  if (have) return have;
  const want = certificateFingerprint(certPem);
  if (!want) throw new Error("the host's registered TLS certificate cannot be parsed; register the agent again");
  const opts: PinnedTlsOptions = {
    ca: certPem,
    allowPartialTrustChain: true,
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      if (cert.fingerprint256 === want) return undefined;
      const err = new Error(
        `the agent presented certificate ${cert.fingerprint256}, not the registered ${want}`,
      ) as NodeJS.ErrnoException;
      err.code = AGENT_CERT_MISMATCH;
      return err;
    },
  };
  if (cache.size > 1024) cache.clear();
  cache.set(certPem, opts);
  return opts;
}

/** OpenSSL's verification failures (and ours) that mean "not the certificate this host registered". */
const VERIFY_CODES = new Set([
  AGENT_CERT_MISMATCH,
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The certificate-check code of an error or of any error in its cause chain (undefined: not one). */
export function agentTlsCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && VERIFY_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A clear sentence for a call to `address` that failed because the agent there did not present its
 * registered certificate; undefined for any other failure.
 */
export function agentTlsFailure(err: unknown, address: string): string | undefined {
  const code = agentTlsCode(err);
  if (!code) return undefined;
  return `the agent at ${address} did not present the TLS certificate it registered with (${code}): if that agent's certificate changed, register it again with a new token (\`wrenn agent --token\`); otherwise something else answers at that address, and nothing was sent to it`;
}
