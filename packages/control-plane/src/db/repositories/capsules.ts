// Capsules: the control plane's record of every sandbox, its placement and its lifecycle state.
import {
  ACTIVE_CAPSULE_STATES,
  CAPSULE_STATES,
  type CapsuleFields,
  type CapsulePlainFieldsJson,
  type CapsuleState,
  FINAL_CAPSULE_STATES,
  TIMEOUT_ACTIONS,
  type TimeoutAction,
} from '@wrenn/protocol';
import type { Kysely, Selectable, Updateable } from 'kysely';
import { newCapsuleId } from '../../ids.js';
import {
  nonEmpty,
  nonNegativeInt,
  oneOf,
  parseJson,
  positiveInt,
  stringMap,
  toDate,
  toDateOrNull,
  toMsOrNull,
} from '../codec.js';
import { invalidArgument } from '../errors.js';
import { decodeCursor, type Page, type PageRequest, pageLimit, toPage } from '../pagination.js';
import type { CapsulesTable, Database } from '../schema.js';

export type { CapsuleState, TimeoutAction };
// The states and timeout actions are the capsule contract's (@wrenn/protocol).
export { ACTIVE_CAPSULE_STATES, CAPSULE_STATES, FINAL_CAPSULE_STATES, TIMEOUT_ACTIONS };

/** The contract's capsule fields (@wrenn/protocol CapsuleFields) and what only the control plane keeps. */
export interface Capsule extends CapsuleFields {
  id: string;
  teamId: string;
  timeoutAction: TimeoutAction;
  envs: Record<string, string>;
  clientId: string | null;
  /** Set when public traffic is off: the proxy demands it on the capsule's ports. */
  trafficAccessToken: string | null;
}

export interface NewCapsule {
  id?: string;
  teamId: string;
  hostId: string | null;
  template: string;
  runtime: string;
  vcpus: number;
  memoryMb: number;
  timeoutSec: number;
  timeoutAction?: TimeoutAction;
  metadata?: Record<string, string>;
  envs?: Record<string, string>;
  envdAccessToken?: string | null;
  clientId?: string | null;
  internet?: boolean;
  autoResume?: boolean;
  trafficAccessToken?: string | null;
  maskRequestHost?: string | null;
  plainFields?: CapsulePlainFieldsJson;
  state?: CapsuleState;
  /** Defaults to now + timeoutSec. */
  expiresAt?: Date | null;
}

export const toCapsule = (r: Selectable<CapsulesTable>): Capsule => ({
  id: r.id,
  teamId: r.team_id,
  hostId: r.host_id,
  template: r.template,
  state: r.state as CapsuleState,
  runtime: r.runtime,
  vcpus: Number(r.vcpus),
  memoryMb: Number(r.memory_mb),
  timeoutSec: Number(r.timeout_sec),
  timeoutAction: r.timeout_action as TimeoutAction,
  metadata: parseJson<Record<string, string>>(r.metadata, {}),
  envs: parseJson<Record<string, string>>(r.envs, {}),
  envdAccessToken: r.envd_access_token,
  clientId: r.client_id,
  internet: Number(r.internet) !== 0,
  autoResume: Number(r.auto_resume) !== 0,
  trafficAccessToken: r.traffic_access_token ?? null,
  maskRequestHost: r.mask_request_host ?? null,
  plainFields: parseJson<CapsulePlainFieldsJson>(r.plain_fields, {}),
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
  expiresAt: toDateOrNull(r.expires_at),
  stoppedAt: toDateOrNull(r.stopped_at),
  error: r.error,
});

export async function createCapsule(db: Kysely<Database>, input: NewCapsule): Promise<Capsule> {
  const now = Date.now();
  const metadata = stringMap(input.metadata, 'metadata');
  const timeoutSec = nonNegativeInt(input.timeoutSec, 'timeoutSec');
  const row: Selectable<CapsulesTable> = {
    id: input.id ?? newCapsuleId(),
    team_id: nonEmpty(input.teamId, 'teamId'),
    host_id: input.hostId,
    template: nonEmpty(input.template, 'template'),
    state: oneOf(input.state ?? 'starting', CAPSULE_STATES, 'state'),
    runtime: nonEmpty(input.runtime, 'runtime'),
    vcpus: positiveInt(input.vcpus, 'vcpus'),
    memory_mb: positiveInt(input.memoryMb, 'memoryMb'),
    timeout_sec: timeoutSec,
    timeout_action: oneOf(input.timeoutAction ?? 'kill', TIMEOUT_ACTIONS, 'timeoutAction'),
    metadata: JSON.stringify(metadata),
    envs: JSON.stringify(stringMap(input.envs, 'envs')),
    envd_access_token: input.envdAccessToken ?? null,
    client_id: input.clientId ?? null,
    internet: input.internet === false ? 0 : 1,
    auto_resume: input.autoResume ? 1 : 0,
    traffic_access_token: input.trafficAccessToken ?? null,
    mask_request_host: input.maskRequestHost ?? null,
    plain_fields: JSON.stringify(input.plainFields ?? {}),
    created_at: now,
    updated_at: now,
    expires_at: input.expiresAt !== undefined ? toMsOrNull(input.expiresAt) : now + timeoutSec * 1000,
    stopped_at: null,
    error: null,
  };
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('capsules').values(row).execute();
    const entries = Object.entries(metadata);
    if (entries.length > 0) {
      await trx
        .insertInto('capsule_metadata')
        .values(entries.map(([key, value]) => ({ capsule_id: row.id, key, value })))
        .execute();
    }
  });
  return toCapsule(row);
}

/** A capsule by id; with `teamId`, only if it belongs to that team (so the API never leaks others'). */
export async function getCapsule(db: Kysely<Database>, id: string, teamId?: string): Promise<Capsule | null> {
  let q = db.selectFrom('capsules').selectAll().where('id', '=', id);
  if (teamId !== undefined) q = q.where('team_id', '=', teamId);
  const r = await q.executeTakeFirst();
  return r ? toCapsule(r) : null;
}

export interface CapsuleFilter extends PageRequest {
  teamId?: string;
  hostId?: string;
  /** Exact template name. */
  template?: string;
  /** One state or any of several. */
  state?: CapsuleState | readonly CapsuleState[];
  /** Every entry must match exactly (key=value). */
  metadata?: Record<string, string>;
}

/** Newest first, keyset-paginated. */
export async function listCapsules(db: Kysely<Database>, filter: CapsuleFilter = {}): Promise<Page<Capsule>> {
  const limit = pageLimit(filter.limit);
  let q = db.selectFrom('capsules').selectAll();
  if (filter.teamId !== undefined) q = q.where('team_id', '=', filter.teamId);
  if (filter.hostId !== undefined) q = q.where('host_id', '=', filter.hostId);
  if (filter.template !== undefined) q = q.where('template', '=', filter.template);
  if (filter.state !== undefined) {
    const states = typeof filter.state === 'string' ? [filter.state] : [...filter.state];
    for (const s of states) oneOf(s, CAPSULE_STATES, 'state filter');
    if (states.length === 0) return { items: [], nextCursor: null };
    q = q.where('state', 'in', states);
  }
  for (const [key, value] of Object.entries(stringMap(filter.metadata, 'metadata filter'))) {
    q = q.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('capsule_metadata as m')
          .select('m.key')
          .whereRef('m.capsule_id', '=', 'capsules.id')
          .where('m.key', '=', key)
          .where('m.value', '=', value),
      ),
    );
  }
  if (filter.cursor) {
    const c = decodeCursor(filter.cursor);
    q = q.where((eb) =>
      eb.or([eb('created_at', '<', c.at), eb.and([eb('created_at', '=', c.at), eb('id', '<', c.id)])]),
    );
  }
  const rows = await q
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  return toPage(rows, limit, (r) => ({ at: Number(r.created_at), id: r.id }), toCapsule);
}

export interface StateChange {
  /** Only change if the current state is one of these (compare-and-set against concurrent changes). */
  from?: readonly CapsuleState[];
  error?: string | null;
  hostId?: string | null;
  expiresAt?: Date | null;
}

/**
 * Moves a capsule to `state`. Entering stopped/error records stoppedAt. Returns the updated
 * capsule, or null when it does not exist or (with `from`) was not in one of those states.
 */
export async function setCapsuleState(
  db: Kysely<Database>,
  id: string,
  state: CapsuleState,
  change: StateChange = {},
): Promise<Capsule | null> {
  oneOf(state, CAPSULE_STATES, 'state');
  const now = Date.now();
  const set: Updateable<CapsulesTable> = { state, updated_at: now };
  if (FINAL_CAPSULE_STATES.includes(state)) set.stopped_at = now;
  if (change.error !== undefined) set.error = change.error;
  if (change.hostId !== undefined) set.host_id = change.hostId;
  if (change.expiresAt !== undefined) set.expires_at = toMsOrNull(change.expiresAt);
  let q = db.updateTable('capsules').set(set).where('id', '=', id);
  if (change.from) {
    if (change.from.length === 0) return null;
    q = q.where('state', 'in', [...change.from]);
  }
  const r = await q.executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) return null;
  return getCapsule(db, id);
}

export interface CapsulePatch {
  hostId?: string | null;
  expiresAt?: Date | null;
  timeoutSec?: number;
  timeoutAction?: TimeoutAction;
  envdAccessToken?: string | null;
  runtime?: string;
}

/** Updates placement/timeout fields; returns the capsule, or null if it does not exist. */
export async function updateCapsule(db: Kysely<Database>, id: string, patch: CapsulePatch): Promise<Capsule | null> {
  const set: Updateable<CapsulesTable> = { updated_at: Date.now() };
  if (patch.hostId !== undefined) set.host_id = patch.hostId;
  if (patch.expiresAt !== undefined) set.expires_at = toMsOrNull(patch.expiresAt);
  if (patch.timeoutSec !== undefined) set.timeout_sec = nonNegativeInt(patch.timeoutSec, 'timeoutSec');
  if (patch.timeoutAction !== undefined)
    set.timeout_action = oneOf(patch.timeoutAction, TIMEOUT_ACTIONS, 'timeoutAction');
  if (patch.envdAccessToken !== undefined) set.envd_access_token = patch.envdAccessToken;
  if (patch.runtime !== undefined) set.runtime = nonEmpty(patch.runtime, 'runtime');
  const r = await db.updateTable('capsules').set(set).where('id', '=', id).executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) return null;
  return getCapsule(db, id);
}

/** Replaces the capsule's metadata (and its filter rows) atomically. */
export async function setCapsuleMetadata(
  db: Kysely<Database>,
  id: string,
  metadata: Record<string, string>,
): Promise<Capsule | null> {
  const md = stringMap(metadata, 'metadata');
  const found = await db.transaction().execute(async (trx) => {
    const r = await trx
      .updateTable('capsules')
      .set({ metadata: JSON.stringify(md), updated_at: Date.now() })
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return false;
    await trx.deleteFrom('capsule_metadata').where('capsule_id', '=', id).execute();
    const entries = Object.entries(md);
    if (entries.length > 0) {
      await trx
        .insertInto('capsule_metadata')
        .values(entries.map(([key, value]) => ({ capsule_id: id, key, value })))
        .execute();
    }
    return true;
  });
  return found ? getCapsule(db, id) : null;
}

/** Active capsules whose deadline passed by `now`: the reconciler applies their timeoutAction. */
export async function listExpiredCapsules(
  db: Kysely<Database>,
  now: Date = new Date(),
  limit = 100,
): Promise<Capsule[]> {
  if (!Number.isInteger(limit) || limit < 1) throw invalidArgument(`limit must be a positive integer, got ${limit}`);
  const rows = await db
    .selectFrom('capsules')
    .selectAll()
    .where('state', 'in', ['starting', 'running'])
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', now.getTime())
    .orderBy('expires_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map(toCapsule);
}

/** Counts a team's capsules per state (for quotas and the dashboard). */
export async function countCapsulesByState(
  db: Kysely<Database>,
  filter: { teamId?: string; hostId?: string } = {},
): Promise<Partial<Record<CapsuleState, number>>> {
  let q = db.selectFrom('capsules').select((eb) => ['state', eb.fn.countAll<number>().as('n')]);
  if (filter.teamId !== undefined) q = q.where('team_id', '=', filter.teamId);
  if (filter.hostId !== undefined) q = q.where('host_id', '=', filter.hostId);
  const rows = await q.groupBy('state').execute();
  const out: Partial<Record<CapsuleState, number>> = {};
  for (const r of rows) out[r.state as CapsuleState] = Number(r.n);
  return out;
}

/** Ids of a team's capsules in `states` created from `template` (e.g. to refuse deleting a template in use). */
export async function capsuleIdsUsingTemplate(
  db: Kysely<Database>,
  teamId: string,
  template: string,
  states: readonly CapsuleState[],
): Promise<string[]> {
  if (states.length === 0) return [];
  const rows = await db
    .selectFrom('capsules')
    .select('id')
    .where('team_id', '=', teamId)
    .where('template', '=', template)
    .where('state', 'in', [...states])
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Removes the row (and its metadata rows). Returns false if it did not exist. */
export async function deleteCapsule(db: Kysely<Database>, id: string): Promise<boolean> {
  const r = await db.deleteFrom('capsules').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** When each of a team's capsules lived (ms), for those alive at some point from `fromMs` to `toMs`. */
export async function capsuleLifespans(
  db: Kysely<Database>,
  teamId: string,
  fromMs: number,
  toMs: number,
): Promise<{ createdAt: number; stoppedAt: number | null }[]> {
  const rows = await db
    .selectFrom('capsules')
    .select(['created_at', 'stopped_at'])
    .where('team_id', '=', teamId)
    .where('created_at', '<=', toMs)
    .where((eb) => eb.or([eb('stopped_at', 'is', null), eb('stopped_at', '>=', fromMs)]))
    .execute();
  return rows.map((r) => ({
    createdAt: Number(r.created_at),
    stoppedAt: r.stopped_at === null ? null : Number(r.stopped_at),
  }));
}
