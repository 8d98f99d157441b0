// A capsule whose envd or init exited on its host: the database says `error` with the agent's
// reason, and the audit log has `capsule.died`. `wrenn up` calls this the moment its in-process
// agent notices (the agent watches each capsule's init); for remote agents the reconciler copies
// the agent's `error` state on its next round.
import type { ControlPlaneContext } from '../context.js';
import { appendAuditEvent } from '../db/repositories/audit-events.js';
import { setCapsuleState } from '../db/repositories/capsules.js';

export async function recordCapsuleDied(
  ctx: ControlPlaneContext,
  capsuleId: string,
  reason: string,
  by: string,
): Promise<boolean> {
  const db = ctx.database.db;
  const changed = await setCapsuleState(db, capsuleId, 'error', { from: ['running', 'paused'], error: reason });
  if (!changed) return false;
  ctx.evictProxy(capsuleId);
  ctx.log.error({ capsuleId, hostId: changed.hostId, reason }, 'capsule died on its host');
  await appendAuditEvent(db, {
    teamId: changed.teamId,
    capsuleId,
    kind: 'capsule.died',
    data: { by, host_id: changed.hostId, reason },
  }).catch((err: unknown) => ctx.log.error({ err, capsuleId }, 'audit event not written'));
  return true;
}
