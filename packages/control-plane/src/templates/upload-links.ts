// Upload links for E2B's COPY file sets that any control-plane replica accepts. GET
// /templates/{id}/files/{hash} answers one replica, the SDK's PUT may reach another (and carries
// no API key), so the link itself says who may upload what: a token of the team, an expiry and a
// random id, signed with HMAC-SHA256 over those and the file-set hash under a key every replica
// shares (cluster/shared-keys.ts). A signature only proves the link was issued; "used once" is a
// row in template_uploads whose primary key is the link's id, inserted when an upload starts on
// any replica, so a second use anywhere is refused. Each request for a link gives a new one (the
// SDK's forceUpload uploads again a set that is already kept).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { UnauthenticatedError } from '@wrenn/protocol';
import type { Kysely } from 'kysely';
import { sharedKey } from '../cluster/shared-keys.js';
import { isUniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';

export const UPLOAD_LINK_TTL_MS = 3600_000;
const KEY_NAME = 'template-upload-links';
/** Longest token issued: team ids and the fields are short; a query longer than this is refused unread. */
export const MAX_TOKEN_LENGTH = 512;

export interface UploadGrant {
  teamId: string;
  hash: string;
  /** The link's id: one use, and the name of the chunks its upload writes. */
  id: string;
  expires: number;
}

const mac = (key: Buffer, g: UploadGrant) =>
  createHmac('sha256', key).update(`wrenn-upload-v1\n${g.teamId}\n${g.hash}\n${g.expires}\n${g.id}`).digest();

/** A new signed token for the team's file set `hash`. */
export async function issueUploadToken(
  db: Kysely<Database>,
  teamId: string,
  hash: string,
  now = Date.now(),
): Promise<string> {
  const g: UploadGrant = { teamId, hash, id: randomBytes(16).toString('base64url'), expires: now + UPLOAD_LINK_TTL_MS };
  const body = Buffer.from(JSON.stringify({ t: g.teamId, e: g.expires, i: g.id })).toString('base64url');
  return `${body}.${mac(await sharedKey(db, KEY_NAME), g).toString('base64url')}`;
}

const refuse = (why: string) =>
  new UnauthenticatedError(
    `this upload link is not valid (${why}); ask GET /templates/{id}/files/{hash} for a new one`,
  );

/** The grant a token carries for `hash`, if its signature holds and it has not expired; throws 401 otherwise. */
export async function verifyUploadToken(
  db: Kysely<Database>,
  token: string,
  hash: string,
  now = Date.now(),
): Promise<UploadGrant> {
  const [body, sig, extra] = token.split('.');
  if (!body || !sig || extra !== undefined || token.length > MAX_TOKEN_LENGTH) throw refuse('malformed');
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw refuse('malformed');
  }
  const f = fields as { t?: unknown; e?: unknown; i?: unknown } | null;
  if (typeof f?.t !== 'string' || typeof f.e !== 'number' || typeof f.i !== 'string') throw refuse('malformed');
  const g: UploadGrant = { teamId: f.t, hash, id: f.i, expires: f.e };
  const want = mac(await sharedKey(db, KEY_NAME), g);
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw refuse('not signed by this service, or for other files');
  if (g.expires < now) throw refuse('expired');
  return g;
}

/** Records the grant's one use; a second use, on any replica, is refused (401). */
export async function claimUpload(db: Kysely<Database>, g: UploadGrant, now = Date.now()): Promise<void> {
  try {
    await db
      .insertInto('template_uploads')
      .values({ id: g.id, team_id: g.teamId, hash: g.hash, used_at: now, expires_at: g.expires })
      .execute();
  } catch (err) {
    if (isUniqueViolation(err)) throw refuse('already used');
    throw err;
  }
}
