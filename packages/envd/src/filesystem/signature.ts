// Signed file URLs (e2b SDK's uploadUrl/downloadUrl): envd's check of them. What is signed and how
// the signature is written is the contract's (protocol/src/contract/file-signature.ts).
import {
  FILE_SIGNATURE_PARAMS,
  type FileOperation,
  fileSignatureExpiration,
  fileSignatureOf,
  fileSignaturePayload,
} from '@wrenn/protocol/contract';
import { nodeCrypto } from '../node-crypto.js';

export type { FileOperation };

export function fileSignature(...fields: Parameters<typeof fileSignaturePayload>): string {
  return fileSignatureOf(
    nodeCrypto()
      .createHash('sha256')
      .update(fileSignaturePayload(...fields))
      .digest('base64'),
  );
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
  const signature = query.get(FILE_SIGNATURE_PARAMS.signature);
  if (!signature) return 'missing X-Access-Token header or signature query parameter';
  const expiration = fileSignatureExpiration(query);
  if (Number.isNaN(expiration)) return 'signature_expiration must be a unix time in seconds';
  const expected = fileSignature(
    query.get(FILE_SIGNATURE_PARAMS.path) ?? '',
    operation,
    query.get(FILE_SIGNATURE_PARAMS.username) ?? '',
    token,
    expiration,
  );
  if (!same(expected, signature)) return 'invalid signature';
  if (expiration !== undefined && expiration < Math.floor(Date.now() / 1000)) return 'signature is already expired';
  return undefined;
}
