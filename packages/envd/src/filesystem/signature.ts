// Signed file URLs (e2b SDK's uploadUrl/downloadUrl): v1_ + unpadded base64 SHA-256 of
// "<path>:<read|write>:<username>:<access token>[:<expiration unix seconds>]".
import { nodeCrypto } from '../node-crypto.js';

export type FileOperation = 'read' | 'write';

export function fileSignature(
  path: string,
  operation: FileOperation,
  username: string,
  token: string,
  expiration?: number,
): string {
  const raw =
    expiration === undefined
      ? `${path}:${operation}:${username}:${token}`
      : `${path}:${operation}:${username}:${token}:${expiration}`;
  return `v1_${nodeCrypto().createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && nodeCrypto().timingSafeEqual(x, y);
}

/**
 * Authorizes a /files request once an access token is set: a matching X-Access-Token header, or a
 * valid, unexpired `signature` for this path, operation and user. Returns why not, or undefined.
 */
export function fileAccessProblem(
  token: string | undefined,
  headerToken: string | undefined,
  query: URLSearchParams,
  operation: FileOperation,
): string | undefined {
  if (!token) return undefined;
  if (headerToken) return same(token, headerToken) ? undefined : 'access token present in header but does not match';
  const signature = query.get('signature');
  if (!signature) return 'missing X-Access-Token header or signature query parameter';
  const rawExp = query.get('signature_expiration');
  let expiration: number | undefined;
  if (rawExp !== null) {
    if (!/^-?\d+$/.test(rawExp)) return 'signature_expiration must be a unix time in seconds';
    expiration = Number(rawExp);
  }
  const expected = fileSignature(query.get('path') ?? '', operation, query.get('username') ?? '', token, expiration);
  if (!same(expected, signature)) return 'invalid signature';
  if (expiration !== undefined && expiration < Math.floor(Date.now() / 1000)) return 'signature is already expired';
  return undefined;
}
