// Where a capsule goes when its first host says it is full, and what to tell the caller when no
// host can take it (the caller's mistake: 400; offline or full hosts: 503).
import {
  type DomainError,
  HostFullError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
} from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { setCapsuleState, updateCapsule } from '../../db/repositories/capsules.js';
import { type Host, listHosts, setHostCapacity } from '../../db/repositories/hosts.js';
import type { NoHostError } from '../../scheduler/least-loaded.js';
import { recordEvent } from './audit.js';

/** The agent refused a create because its host is full (HostCapacityError there), not because of the request. */
export const isCapacityRefusal = (err: unknown): err is ResourceExhaustedError => err instanceof ResourceExhaustedError;

/**
 * A host refused the capsule for lack of room: remembers it as full (until its next heartbeat or a
 * destroy there says otherwise) and moves the capsule's row to the next host that may have room.
 * With none left the row is stopped with the reason (it never ran) and the caller gets a 503
 * `host_full` naming what is full: a client can retry later, nothing is wrong with its request.
 */
export async function placeElsewhere(
  ctx: ControlPlaneContext,
  id: string,
  full: Host,
  reason: string,
  refusedBy: Set<string>,
  place: () => Promise<{ host: Host; runtime: string }>,
): Promise<{ host: Host; runtime: string }> {
  const db = ctx.database.db;
  refusedBy.add(full.id);
  await setHostCapacity(db, full.id, { room: 0, full: reason }).catch(() => undefined);
  let next: { host: Host; runtime: string } | undefined;
  try {
    next = await place();
  } catch {
    next = undefined;
  }
  if (next) {
    await updateCapsule(db, id, { hostId: next.host.id, runtime: next.runtime });
    return next;
  }
  const message =
    refusedBy.size > 1 ? `every host that could run this capsule is full; the last said: ${reason}` : reason;
  const row = await setCapsuleState(db, id, 'stopped', { error: `not created: ${message}`, from: ['starting'] }).catch(
    () => null,
  );
  ctx.evictProxy(id);
  if (row) await recordEvent(ctx, row.teamId, id, 'capsule.refused', { message, host_ids: [...refusedBy] });
  throw new HostFullError(message);
}

/**
 * Why no host could take a capsule: asking for a runtime the template or every host of this
 * deployment lacks is the caller's mistake (400); hosts that are offline or full are not (503).
 */
export async function noHostError(
  ctx: ControlPlaneContext,
  runtime: string | undefined,
  template: { name: string; runtimes: readonly string[] },
  err: NoHostError,
): Promise<DomainError> {
  if (runtime !== undefined) {
    if (template.runtimes.length > 0 && !template.runtimes.includes(runtime))
      return new InvalidArgumentError(
        `template '${template.name}' runs on ${template.runtimes.join(', ')}, not on runtime '${runtime}'`,
      );
    const offered = new Set((await listHosts(ctx.database.db)).flatMap((h) => h.runtimes));
    if (!offered.has(runtime))
      return new InvalidArgumentError(
        `no host of this deployment offers runtime '${runtime}' (hosts offer: ${[...offered].join(', ') || 'none'})`,
      );
  }
  return err.full ? new HostFullError(err.message) : new UnavailableError(err.message, { code: 'no_host_available' });
}
