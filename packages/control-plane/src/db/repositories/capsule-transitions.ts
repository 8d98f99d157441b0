// A capsule's state change and the audit event that says why it happened, written in one
// transaction: no reader (another replica, the dashboard, a test) sees the new state without its
// reason, and a failed event write leaves the state as it was for the next round to retry.
import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';
import { appendAuditEvent } from './audit-events.js';
import { type Capsule, type CapsuleState, type StateChange, setCapsuleState } from './capsules.js';

export interface TransitionEvent {
  kind: string;
  /** The event's data, or a function of the changed row (e.g. for its host). */
  data: Record<string, unknown> | ((changed: Capsule) => Record<string, unknown>);
}

/** setCapsuleState plus its audit event; null (and no event) when the compare-and-set did not match. */
export async function transitionCapsule(
  db: Kysely<Database>,
  id: string,
  state: CapsuleState,
  change: StateChange,
  event: TransitionEvent,
): Promise<Capsule | null> {
  return db.transaction().execute(async (trx) => {
    const changed = await setCapsuleState(trx, id, state, change);
    if (!changed) return null;
    await appendAuditEvent(trx, {
      teamId: changed.teamId,
      capsuleId: id,
      kind: event.kind,
      data: typeof event.data === 'function' ? event.data(changed) : event.data,
    });
    return changed;
  });
}
