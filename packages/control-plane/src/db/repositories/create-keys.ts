// Idempotency keys of creates (migrations/0012): (team, key) → the capsule the first attempt made.
// A claim is one INSERT … ON CONFLICT DO NOTHING, so of two attempts racing with one key exactly
// one makes a capsule; the other is told which capsule is (being) made. Keys live a day.
import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** How long a key is remembered: a replay after that makes a new capsule. */
export const CREATE_KEY_TTL_MS = 24 * 3600_000;

export type CreateKeyClaim = { claimed: true } | { claimed: false; capsuleId: string; claimedAt: Date };

/** Claims (team, key) for `capsuleId`, or says which capsule an earlier attempt claimed it for. */
export async function claimCreateKey(
  db: Kysely<Database>,
  teamId: string,
  key: string,
  capsuleId: string,
  now = Date.now(),
): Promise<CreateKeyClaim> {
  await db
    .deleteFrom('capsule_create_keys')
    .where('created_at', '<', now - CREATE_KEY_TTL_MS)
    .execute();
  const r = await db
    .insertInto('capsule_create_keys')
    .values({ team_id: teamId, key, capsule_id: capsuleId, created_at: now })
    .onConflict((oc) => oc.columns(['team_id', 'key']).doNothing())
    .executeTakeFirst();
  if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 1) return { claimed: true };
  const row = await db
    .selectFrom('capsule_create_keys')
    .select(['capsule_id', 'created_at'])
    .where('team_id', '=', teamId)
    .where('key', '=', key)
    .executeTakeFirst();
  // Released between our insert and this read: the caller claims again.
  if (!row) return claimCreateKey(db, teamId, key, capsuleId, now);
  return { claimed: false, capsuleId: row.capsule_id, claimedAt: new Date(Number(row.created_at)) };
}

/** Frees (team, key) if it still names `capsuleId` (that attempt failed: the next one may create). */
export async function releaseCreateKey(
  db: Kysely<Database>,
  teamId: string,
  key: string,
  capsuleId: string,
): Promise<void> {
  await db
    .deleteFrom('capsule_create_keys')
    .where('team_id', '=', teamId)
    .where('key', '=', key)
    .where('capsule_id', '=', capsuleId)
    .execute();
}
