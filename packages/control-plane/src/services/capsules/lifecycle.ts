// A capsule's life after create: destroy, pause (freeze or hibernate), resume, keep-alive and
// timeout changes. Each keeps the row true, drops the proxy's cached route and is audited.
import { ConflictError, InvalidArgumentError, NotFoundError, type PauseMode } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { type Capsule, setCapsuleState, updateCapsule } from '../../db/repositories/capsules.js';
import { getHost, setHostCapacity } from '../../db/repositories/hosts.js';
import { expiresFromAgent, pauseModeToAgent, stateFromAgent } from './agent-mapping.js';
import { recordEvent } from './audit.js';
import { agentForCapsule, getCapsule, requireCapsuleState } from './lookup.js';
import { validateTimeout } from './validate.js';

/** Destroys the capsule on its host and records it stopped. 404 if it is unknown or already destroyed. */
export async function destroyCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  const c = await getCapsule(ctx, teamId, id);
  if (c.state === 'stopped') throw new NotFoundError(`capsule ${id} was already destroyed`);
  const host = c.hostId ? await getHost(ctx.database.db, c.hostId) : null;
  if (host) {
    try {
      await ctx.agents.client(host).destroyCapsule({ id });
    } catch (err) {
      // Not on the agent (failed start, agent lost its state): nothing left to remove there.
      if (!(err instanceof NotFoundError)) throw err;
    }
    // A host that said it was full has room again now, not only at its next heartbeat.
    if (host.capacity?.full)
      await setHostCapacity(ctx.database.db, host.id, { room: 1, full: null }).catch(() => undefined);
  }
  const stopped = await setCapsuleState(ctx.database.db, id, 'stopped', {
    from: ['starting', 'running', 'paused', 'hibernated', 'error'],
    expiresAt: null,
  });
  ctx.evictProxy(id);
  if (!stopped) throw new NotFoundError(`capsule ${id} was already destroyed`);
  await recordEvent(ctx, teamId, id, 'capsule.destroyed');
  return stopped;
}

/**
 * Pauses a running capsule. 'freeze' keeps memory and processes where the runtime can;
 * 'hibernate' keeps only the disk and frees memory. The result is paused or hibernated, as the
 * runtime managed.
 */
export async function pauseCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  mode?: PauseMode,
): Promise<Capsule> {
  if (mode !== undefined && mode !== 'freeze' && mode !== 'hibernate')
    throw new InvalidArgumentError(`mode must be freeze or hibernate, got '${String(mode)}'`);
  const c = await requireCapsuleState(ctx, teamId, id, ['running'], 'pause');
  const agent = await agentForCapsule(ctx, c);
  let res: Awaited<ReturnType<typeof agent.pauseCapsule>>;
  try {
    res = await agent.pauseCapsule({ id, mode: pauseModeToAgent(mode) });
  } finally {
    ctx.evictProxy(id);
  }
  const state = res.capsule ? stateFromAgent(res.capsule.state) : mode === 'hibernate' ? 'hibernated' : 'paused';
  const updated = await setCapsuleState(ctx.database.db, id, state, { from: ['running'] });
  if (!updated)
    throw new ConflictError(`capsule ${id} changed state while it was being paused; fetch it and try again`);
  await recordEvent(ctx, teamId, id, 'capsule.paused', { mode, state, keeps: res.capsule?.pauseKeeps ?? '' });
  return updated;
}

/** Resumes a paused or hibernated capsule; `timeoutSec` (when set) replaces its timeout. */
export async function resumeCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  opts: { timeoutSec?: number } = {},
): Promise<Capsule> {
  validateTimeout(opts.timeoutSec);
  const c = await requireCapsuleState(ctx, teamId, id, ['paused', 'hibernated'], 'resume');
  const agent = await agentForCapsule(ctx, c);
  let res: Awaited<ReturnType<typeof agent.resumeCapsule>>;
  try {
    res = await agent.resumeCapsule({ id, timeoutSec: opts.timeoutSec ?? 0 });
  } finally {
    ctx.evictProxy(id);
  }
  const timeoutSec = opts.timeoutSec || c.timeoutSec;
  const expiresAt = expiresFromAgent(res.capsule) ?? (timeoutSec > 0 ? new Date(Date.now() + timeoutSec * 1000) : null);
  const updated = await setCapsuleState(ctx.database.db, id, 'running', { from: ['paused', 'hibernated'], expiresAt });
  if (!updated)
    throw new ConflictError(`capsule ${id} changed state while it was being resumed; fetch it and try again`);
  const result = opts.timeoutSec
    ? ((await updateCapsule(ctx.database.db, id, { timeoutSec: opts.timeoutSec })) ?? updated)
    : updated;
  ctx.evictProxy(id);
  await recordEvent(ctx, teamId, id, 'capsule.resumed', { from: c.state });
  return result;
}

/** Restarts the timeout clock of a running capsule (keep-alive). */
export async function pingCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  const c = await requireCapsuleState(ctx, teamId, id, ['running'], 'ping');
  const agent = await agentForCapsule(ctx, c);
  const res = await agent.pingCapsule({ id });
  const expiresAt =
    expiresFromAgent(res.capsule) ?? (c.timeoutSec > 0 ? new Date(Date.now() + c.timeoutSec * 1000) : null);
  return (await updateCapsule(ctx.database.db, id, { expiresAt })) ?? c;
}

/** Sets a running capsule's timeout to `timeoutSec` from now (0: never times out). */
export async function setCapsuleTimeout(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  timeoutSec: number,
): Promise<Capsule> {
  if (timeoutSec === undefined) throw new InvalidArgumentError('timeout_sec is required');
  validateTimeout(timeoutSec);
  const c = await requireCapsuleState(ctx, teamId, id, ['running'], 'set the timeout of');
  const agent = await agentForCapsule(ctx, c);
  const res = await agent.pingCapsule({ id, timeoutSec });
  const expiresAt = expiresFromAgent(res.capsule) ?? (timeoutSec > 0 ? new Date(Date.now() + timeoutSec * 1000) : null);
  const updated = (await updateCapsule(ctx.database.db, id, { timeoutSec, expiresAt })) ?? c;
  await recordEvent(ctx, teamId, id, 'capsule.timeout_set', { timeout_sec: timeoutSec });
  return updated;
}
