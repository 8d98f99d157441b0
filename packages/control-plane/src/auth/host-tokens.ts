// One-time host registration tokens: an operator creates one, gives it to a new host agent, and
// the agent presents it once to register. Stored hashed; consumed atomically, so two agents
// racing with the same token cannot both register.
import type { Kysely } from 'kysely';
import {
  createHost,
  type Database,
  DbError,
  getHost,
  getHostByAddress,
  type Host,
  type NewHost,
  recordHeartbeat,
  toDate,
} from '../db/index.js';
import { newHostId, newHostTokenId, randomBase36 } from '../ids.js';
import { sha256Hex } from './hash.js';

const HOST_TOKEN_PREFIX = 'wrh_';
const hostTokenPattern = /^wrh_[a-z0-9]{32}$/;
export const DEFAULT_HOST_TOKEN_TTL_MS = 60 * 60 * 1000;

export const isHostTokenFormat = (t: unknown): t is string => typeof t === 'string' && hostTokenPattern.test(t);

export interface HostToken {
  id: string;
  /** Shown once; only its hash is stored. */
  token: string;
  createdAt: Date;
  expiresAt: Date;
}

export async function createHostToken(db: Kysely<Database>, opts: { ttlMs?: number } = {}): Promise<HostToken> {
  const ttl = opts.ttlMs ?? DEFAULT_HOST_TOKEN_TTL_MS;
  if (!Number.isSafeInteger(ttl) || ttl <= 0)
    throw new DbError('invalid_argument', `ttlMs must be a positive integer, got ${ttl}`);
  const token = HOST_TOKEN_PREFIX + randomBase36(32);
  const now = Date.now();
  const row = {
    id: newHostTokenId(),
    hash: sha256Hex(token),
    created_at: now,
    expires_at: now + ttl,
    used_at: null,
    host_id: null,
  };
  await db.insertInto('host_tokens').values(row).execute();
  return { id: row.id, token, createdAt: toDate(now), expiresAt: toDate(row.expires_at) };
}

/** Marks the token used by `hostId`; true only for the first use of a valid, unexpired token. */
export async function consumeHostToken(db: Kysely<Database>, token: string, hostId: string): Promise<boolean> {
  if (!isHostTokenFormat(token)) return false;
  const now = Date.now();
  const r = await db
    .updateTable('host_tokens')
    .set({ used_at: now, host_id: hostId })
    .where('hash', '=', sha256Hex(token))
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Registers a host agent with a one-time token. An agent re-registering from an address that is
 * already known keeps its host id (its record is refreshed). Throws DbError 'unauthenticated'
 * for a malformed, unknown, used or expired token.
 */
export async function registerHost(
  db: Kysely<Database>,
  input: { token: string } & Omit<NewHost, 'id' | 'registrationTokenHash' | 'status'>,
): Promise<Host> {
  return db.transaction().execute(async (trx) => {
    const existing = await getHostByAddress(trx, input.address);
    const hostId = existing?.id ?? newHostId();
    if (!(await consumeHostToken(trx, input.token, hostId))) {
      throw new DbError(
        'unauthenticated',
        'host registration token is invalid, expired or already used; create a new one with `wrenn hosts token`',
      );
    }
    const tokenHash = sha256Hex(input.token);
    if (existing) {
      await trx
        .updateTable('hosts')
        .set({ registration_token_hash: tokenHash })
        .where('id', '=', existing.id)
        .execute();
      const host = await recordHeartbeat(trx, existing.id, {
        runtimes: input.runtimes,
        cpuCount: input.cpuCount,
        memoryMb: input.memoryMb,
      });
      return host ?? (await getHost(trx, existing.id))!;
    }
    return createHost(trx, { ...input, id: hostId, registrationTokenHash: tokenHash });
  });
}
