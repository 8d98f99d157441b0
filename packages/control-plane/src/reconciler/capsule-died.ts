// A capsule whose envd or init exited on its host: the database says `error` with the agent's
// reason, and the audit log has `capsule.died`. `wrenn up` calls this the moment its in-process
// agent notices (the agent watches each capsule's init); for remote agents the reconciler copies
// the agent's `error` state on its next round.
import type { ControlPlaneContext } from '../context.js';
import { transitionCapsule } from '../db/repositories/capsule-transitions.js';

export async function recordCapsuleDied(
  ctx: ControlPlaneContext,
  capsuleId: string,
  reason: string,
  by: string,
): Promise<boolean> {
  const changed = await transitionCapsule(
    ctx.database.db,
    capsuleId,
    'error',
    { from: ['running', 'paused'], error: reason },
    { kind: 'capsule.died', data: (c) => ({ by, host_id: c.hostId, reason }) },
  );
  if (!changed) return false;
  ctx.evictProxy(capsuleId);
  ctx.log.error({ capsuleId, hostId: changed.hostId, reason }, 'capsule died on its host');
  return true;
}
