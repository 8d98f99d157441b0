// Capsule queries the API services need beyond capsules.ts: listing with a template filter and
// finding the capsules that still depend on a template.
import type { Kysely } from 'kysely';
import { oneOf, stringMap } from '../codec.js';
import { decodeCursor, type Page, pageLimit, toPage } from '../pagination.js';
import type { Database } from '../schema.js';
import { CAPSULE_STATES, type Capsule, type CapsuleFilter, type CapsuleState, toCapsule } from './capsules.js';

export interface CapsuleListFilter extends CapsuleFilter {
  template?: string;
}

/** Like listCapsules (newest first, keyset-paginated), plus an exact template filter. */
export async function listCapsulesWithTemplate(
  db: Kysely<Database>,
  filter: CapsuleListFilter = {},
): Promise<Page<Capsule>> {
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

/** Ids of a team's capsules in `states` that were created from `template`. */
export async function capsuleIdsUsingTemplate(
  db: Kysely<Database>,
  teamId: string,
  template: string,
  states: readonly CapsuleState[],
): Promise<string[]> {
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
