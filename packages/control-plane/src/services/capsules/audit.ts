// The audit trail of capsule operations (and snapshots): one row per change, written after the
// change succeeded. A lost audit line is logged, never turned into the operation's error.
import type { ControlPlaneContext } from '../../context.js';
import { appendAuditEvent } from '../../db/repositories/audit-events.js';

/** Appends an audit event; never throws. */
export async function recordEvent(
  ctx: ControlPlaneContext,
  teamId: string,
  capsuleId: string | null,
  kind: string,
  data: Record<string, unknown> = {},
): Promise<void> {
  try {
    await appendAuditEvent(ctx.database.db, { teamId, capsuleId, kind, data });
  } catch (err) {
    // The operation itself succeeded; a lost audit line must not turn it into an error.
    ctx.log.warn({ err, capsuleId, kind }, 'could not write audit event');
  }
}
