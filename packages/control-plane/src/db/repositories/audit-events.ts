// Append-only log of what happened to capsules and teams (created, paused, killed, errors...).
import type { Kysely, Selectable } from 'kysely';
import { nonEmpty, parseJson, toDate } from '../codec.js';
import { invalidArgument } from '../errors.js';
import { type Page, type PageRequest, pageLimit } from '../pagination.js';
import type { AuditEventsTable, Database } from '../schema.js';

export interface AuditEvent {
  /** Increases with every append: the order events happened in. */
  id: number;
  teamId: string | null;
  capsuleId: string | null;
  kind: string;
  data: Record<string, unknown>;
  createdAt: Date;
}

export const toAuditEvent = (r: Selectable<AuditEventsTable>): AuditEvent => ({
  id: Number(r.id),
  teamId: r.team_id,
  capsuleId: r.capsule_id,
  kind: r.kind,
  data: parseJson<Record<string, unknown>>(r.data, {}),
  createdAt: toDate(r.created_at),
});

export async function appendAuditEvent(
  db: Kysely<Database>,
  event: { teamId: string | null; capsuleId?: string | null; kind: string; data?: Record<string, unknown>; at?: Date },
): Promise<AuditEvent> {
  const row = {
    team_id: event.teamId,
    capsule_id: event.capsuleId ?? null,
    kind: nonEmpty(event.kind, 'audit event kind'),
    data: JSON.stringify(event.data ?? {}),
    created_at: (event.at ?? new Date()).getTime(),
  };
  const r = await db.insertInto('audit_events').values(row).returning('id').executeTakeFirstOrThrow();
  return toAuditEvent({ ...row, id: r.id });
}

export interface AuditFilter extends PageRequest {
  capsuleId?: string;
  teamId?: string;
  kind?: string;
}

/** Oldest first (the order they happened); the cursor is the last id seen. */
export async function listAuditEvents(db: Kysely<Database>, filter: AuditFilter): Promise<Page<AuditEvent>> {
  if (filter.capsuleId === undefined && filter.teamId === undefined) {
    throw invalidArgument('listAuditEvents needs a capsuleId or a teamId');
  }
  const limit = pageLimit(filter.limit);
  let q = db.selectFrom('audit_events').selectAll();
  if (filter.capsuleId !== undefined) q = q.where('capsule_id', '=', filter.capsuleId);
  if (filter.teamId !== undefined) q = q.where('team_id', '=', filter.teamId);
  if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
  if (filter.cursor) {
    const after = Number(filter.cursor);
    if (!Number.isSafeInteger(after) || after < 0) {
      throw invalidArgument('cursor is not valid: pass back the nextCursor of the previous page unchanged');
    }
    q = q.where('id', '>', after);
  }
  const rows = await q
    .orderBy('id')
    .limit(limit + 1)
    .execute();
  const more = rows.length > limit;
  const items = (more ? rows.slice(0, limit) : rows).map(toAuditEvent);
  const last = items[items.length - 1];
  return { items, nextCursor: more && last ? String(last.id) : null };
}
