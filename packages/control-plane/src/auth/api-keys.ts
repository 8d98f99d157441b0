// API keys: 'wrn_' + 32 random [a-z0-9]. Only the sha256 hash and a short display prefix are
// stored; the full key is shown once, when created. A key's hash is looked up by a unique index,
// so comparing in constant time is unnecessary (an attacker cannot steer hash prefixes).
// Every key also has an E2B form, 'e2b_' + the hex of its 32 characters, which the e2b SDKs'
// own key check accepts (it wants 'e2b_' and hex): the same key written otherwise, so it needs no
// storage, works for keys made before it existed, and is taken by every route that takes a key.
import type { Kysely, Selectable } from 'kysely';
import { type Database, DbError, nonEmpty, type Team, toDate, toDateOrNull, toTeam } from '../db/index.js';
import type { ApiKeysTable } from '../db/schema.js';
import { newApiKeyId, randomBase36 } from '../ids.js';
import { sha256Hex } from './hash.js';

export const API_KEY_PREFIX = 'wrn_';
export const API_KEY_RANDOM_LENGTH = 32;
/** Characters kept for display: 'wrn_' + 8. */
export const API_KEY_DISPLAY_LENGTH = 12;
const apiKeyPattern = /^wrn_[a-z0-9]{32}$/;

export const isApiKeyFormat = (key: unknown): key is string => typeof key === 'string' && apiKeyPattern.test(key);

export const E2B_KEY_PREFIX = 'e2b_';
const e2bKeyPattern = /^e2b_[0-9a-f]{64}$/;

/** The E2B form of a key: 'e2b_' + the hex of its 32 characters (64 hex digits). */
export function e2bKeyOf(key: string): string {
  assertApiKeyFormat(key);
  return E2B_KEY_PREFIX + Buffer.from(key.slice(API_KEY_PREFIX.length), 'latin1').toString('hex');
}

/** The 'wrn_' key written as `key` (itself, or decoded from its E2B form); null when it is neither. */
export function canonicalApiKey(key: unknown): string | null {
  if (isApiKeyFormat(key)) return key;
  if (typeof key !== 'string' || !e2bKeyPattern.test(key)) return null;
  const decoded = API_KEY_PREFIX + Buffer.from(key.slice(E2B_KEY_PREFIX.length), 'hex').toString('latin1');
  return isApiKeyFormat(decoded) ? decoded : null;
}

/** Throws a message saying what a key must look like. */
export function assertApiKeyFormat(key: string, what = 'API key'): void {
  if (!isApiKeyFormat(key)) {
    throw new DbError(
      'invalid_argument',
      `${what} is malformed: it must be 'wrn_' followed by 32 characters of a-z and 0-9 (generate one with \`wrenn keys create\` or let Wrenn create it)`,
    );
  }
}

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBase36(API_KEY_RANDOM_LENGTH);
}

export interface ApiKeyInfo {
  id: string;
  teamId: string;
  name: string;
  /** Display form, e.g. 'wrn_ab12cd34'. */
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const toApiKeyInfo = (r: Selectable<ApiKeysTable>): ApiKeyInfo => ({
  id: r.id,
  teamId: r.team_id,
  name: r.name,
  prefix: r.prefix,
  createdAt: toDate(r.created_at),
  lastUsedAt: toDateOrNull(r.last_used_at),
  revokedAt: toDateOrNull(r.revoked_at),
});

/**
 * Stores a key for the team: a new random one, or `key` when given (e.g. WRENN_API_KEY).
 * Returns the full key (show it once) and its stored record.
 */
export async function createApiKey(
  db: Kysely<Database>,
  input: { teamId: string; name: string; key?: string },
): Promise<{ key: string; info: ApiKeyInfo }> {
  const key = input.key ?? generateApiKey();
  assertApiKeyFormat(key);
  const row: Selectable<ApiKeysTable> = {
    id: newApiKeyId(),
    team_id: nonEmpty(input.teamId, 'teamId'),
    name: nonEmpty(input.name, 'API key name'),
    prefix: key.slice(0, API_KEY_DISPLAY_LENGTH),
    hash: sha256Hex(key),
    created_at: Date.now(),
    last_used_at: null,
    revoked_at: null,
  };
  await db.insertInto('api_keys').values(row).execute();
  return { key, info: toApiKeyInfo(row) };
}

// Writing last_used_at on every request would turn each read into a write; once a minute is enough.
const LAST_USED_RESOLUTION_MS = 60_000;

/** The team a key belongs to, or null for a malformed, unknown or revoked key. */
export async function authenticate(db: Kysely<Database>, key: string): Promise<Team | null> {
  return (await authenticateApiKey(db, key))?.team ?? null;
}

/** Like authenticate, plus the id of the key used (for audit events and "revoke this key"). */
export async function authenticateApiKey(
  db: Kysely<Database>,
  key: string,
): Promise<{ team: Team; apiKeyId: string } | null> {
  const canonical = canonicalApiKey(key);
  if (canonical === null) return null;
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('teams', 'teams.id', 'api_keys.team_id')
    .select([
      'api_keys.id as key_id',
      'api_keys.last_used_at',
      'api_keys.revoked_at',
      'teams.id',
      'teams.name',
      'teams.created_at',
    ])
    .where('api_keys.hash', '=', sha256Hex(canonical))
    .executeTakeFirst();
  if (!row || row.revoked_at !== null) return null;
  const now = Date.now();
  if (row.last_used_at === null || now - Number(row.last_used_at) >= LAST_USED_RESOLUTION_MS) {
    await db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', row.key_id).execute();
  }
  return { team: toTeam({ id: row.id, name: row.name, created_at: row.created_at }), apiKeyId: row.key_id };
}

/** A team's keys, newest first, revoked ones included (their revokedAt is set). */
export async function listApiKeys(db: Kysely<Database>, teamId: string): Promise<ApiKeyInfo[]> {
  const rows = await db
    .selectFrom('api_keys')
    .selectAll()
    .where('team_id', '=', teamId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
  return rows.map(toApiKeyInfo);
}

export async function getApiKey(db: Kysely<Database>, id: string, teamId?: string): Promise<ApiKeyInfo | null> {
  let q = db.selectFrom('api_keys').selectAll().where('id', '=', id);
  if (teamId !== undefined) q = q.where('team_id', '=', teamId);
  const r = await q.executeTakeFirst();
  return r ? toApiKeyInfo(r) : null;
}

/**
 * Revokes a key by id (limited to `teamId` when given). Returns the key's record, or null if there
 * is no such key. Revoking twice keeps the first revocation time.
 */
export async function revokeApiKey(db: Kysely<Database>, id: string, teamId?: string): Promise<ApiKeyInfo | null> {
  let q = db
    .updateTable('api_keys')
    .set({ revoked_at: Date.now() })
    .where('id', '=', id)
    .where('revoked_at', 'is', null);
  if (teamId !== undefined) q = q.where('team_id', '=', teamId);
  await q.execute();
  return getApiKey(db, id, teamId);
}

/** Renames a key of the team; null when the team has no such key. */
export async function renameApiKey(
  db: Kysely<Database>,
  id: string,
  teamId: string,
  name: string,
): Promise<ApiKeyInfo | null> {
  await db
    .updateTable('api_keys')
    .set({ name: nonEmpty(name, 'API key name') })
    .where('id', '=', id)
    .where('team_id', '=', teamId)
    .execute();
  return getApiKey(db, id, teamId);
}
