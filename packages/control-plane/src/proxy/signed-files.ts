// Signed file URLs that name no capsule. With one sandbox URL for every sandbox (E2B_SANDBOX_URL,
// how the e2b SDK is pointed at Wrenn), the SDK's downloadUrl/uploadUrl of a secure capsule are
// `<sandbox URL>/files?path=…&signature=…`: no P-<id> host name, no E2b-Sandbox-Id header. The
// signature is a SHA-256 over the capsule's envd access token, so it names its capsule: this finds
// the live capsule whose token gives that signature. envd checks the request again (expiry too).
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  FILE_SIGNATURE_PARAMS,
  fileOperationOf,
  fileSignatureExpiration,
  fileSignatureOf,
  fileSignaturePayload,
  LIVE_CAPSULE_STATES,
} from '@wrenn/protocol/contract';
import type { ControlPlaneContext } from '../context.js';

/** The query of a signed `/files` request (a `signature` parameter), else undefined. */
export function signedFilesQuery(url: string | undefined): URLSearchParams | undefined {
  if (!url?.startsWith('/files?')) return undefined;
  const query = new URLSearchParams(url.slice('/files?'.length));
  return query.get(FILE_SIGNATURE_PARAMS.signature) ? query : undefined;
}

/** The live capsule whose envd access token signed this request, if any. */
export async function findSignedCapsule(
  ctx: ControlPlaneContext,
  method: string | undefined,
  query: URLSearchParams,
): Promise<string | undefined> {
  const operation = fileOperationOf(method);
  const expiration = fileSignatureExpiration(query);
  const given = Buffer.from(query.get(FILE_SIGNATURE_PARAMS.signature) ?? '');
  if (!operation || Number.isNaN(expiration) || given.length === 0) return undefined;
  const path = query.get(FILE_SIGNATURE_PARAMS.path) ?? '';
  const username = query.get(FILE_SIGNATURE_PARAMS.username) ?? '';
  const rows = await ctx.database.db
    .selectFrom('capsules')
    .select(['id', 'envd_access_token'])
    .where('envd_access_token', 'is not', null)
    .where('state', 'in', [...LIVE_CAPSULE_STATES])
    .execute();
  for (const row of rows) {
    if (!row.envd_access_token) continue;
    const payload = fileSignaturePayload(path, operation, username, row.envd_access_token, expiration);
    const expected = Buffer.from(fileSignatureOf(createHash('sha256').update(payload).digest('base64')));
    if (expected.length === given.length && timingSafeEqual(expected, given)) return row.id;
  }
  return undefined;
}
