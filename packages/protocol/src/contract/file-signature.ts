// Signed file URLs (the e2b SDK's uploadUrl/downloadUrl of a secure capsule): what is signed and how
// the signature is written. envd checks them; the control plane's proxy also uses them to find the
// capsule a signed URL is for when it carries no sandbox host or header. The SHA-256 is the
// caller's (node:crypto on both sides), so the contract stays free of dependencies.

export type FileOperation = 'read' | 'write';

/** The query parameters of a signed /files URL. */
export const FILE_SIGNATURE_PARAMS = {
  path: 'path',
  username: 'username',
  signature: 'signature',
  expiration: 'signature_expiration',
} as const;

/** The signed text: "<path>:<read|write>:<username>:<access token>[:<expiration unix seconds>]". */
export function fileSignaturePayload(
  path: string,
  operation: FileOperation,
  username: string,
  token: string,
  expiration?: number,
): string {
  const base = `${path}:${operation}:${username}:${token}`;
  return expiration === undefined ? base : `${base}:${expiration}`;
}

/** The signature written from the payload's SHA-256 in base64: "v1_" and the digest unpadded. */
export function fileSignatureOf(sha256Base64: string): string {
  return `v1_${sha256Base64.replace(/=+$/, '')}`;
}

/** A /files request's operation by its method (GET reads, POST writes), else undefined. */
export function fileOperationOf(method: string | undefined): FileOperation | undefined {
  return method === 'GET' || method === 'HEAD' ? 'read' : method === 'POST' ? 'write' : undefined;
}

/** The expiration of a signed URL: undefined when absent, NaN when not a whole unix time. */
export function fileSignatureExpiration(query: URLSearchParams): number | undefined {
  const raw = query.get(FILE_SIGNATURE_PARAMS.expiration);
  if (raw === null) return undefined;
  return /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
}
