// Creates that may be replayed: a create with an Idempotency-Key (a client's own, or the one the
// load balancer adds so it may replay the request on another replica when the first died before
// answering) makes at most one capsule per (team, key). The first attempt claims the key; a
// replay finds that capsule and answers with it once it runs, waits while its host is still
// starting it, adopts it when the host runs it but the attempt that asked for it is gone, and
// gives it up (error, with an event) and makes a new one when the host never got it.
import { NotFoundError, UnavailableError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { transitionCapsule } from '../../db/repositories/capsule-transitions.js';
import { type Capsule, getCapsule } from '../../db/repositories/capsules.js';
import { type CreateKeyClaim, claimCreateKey, releaseCreateKey } from '../../db/repositories/create-keys.js';
import { getHost } from '../../db/repositories/hosts.js';
import { newCapsuleId } from '../../ids.js';
import { fromAgentState } from '../../reconciler/states.js';
import { templateConfigFor } from '../template-config.js';
import { resolveTemplate } from '../templates.js';
import { type CreateCapsuleInput, createCapsule, startFromTemplateConfig } from './create.js';
import { validateIdempotencyKey } from './validate.js';

/** How long a replay waits for the first attempt's capsule before answering 503. */
const SETTLE_TIMEOUT_MS = 60_000;
/** A claim this old whose capsule its host does not know: the attempt that claimed it is gone. */
const ORPHAN_AFTER_MS = 3_000;
const POLL_MS = 250;

/** createCapsule, at most once per (team, key) when a key is given. */
export async function createCapsuleOnce(
  ctx: ControlPlaneContext,
  teamId: string,
  input: CreateCapsuleInput,
  key: string | undefined,
): Promise<Capsule> {
  if (key === undefined) return createCapsule(ctx, teamId, input);
  validateIdempotencyKey(key);
  const db = ctx.database.db;
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const id = newCapsuleId();
    const claim = await claimCreateKey(db, teamId, key, id);
    if (claim.claimed) {
      try {
        return await createCapsule(ctx, teamId, { ...input, id });
      } catch (err) {
        // This attempt failed and says so: a later one with the key may try again.
        await releaseCreateKey(db, teamId, key, id).catch(() => undefined);
        throw err;
      }
    }
    const earlier = await settleEarlierCreate(ctx, teamId, key, claim, deadline);
    if (earlier) return earlier;
  }
}

type HostView = 'running' | 'starting' | 'missing' | 'unknown';

/** What the capsule's host says of it: 'unknown' when the host cannot be asked. */
async function hostViewOf(ctx: ControlPlaneContext, row: Capsule): Promise<HostView> {
  const host = row.hostId ? await getHost(ctx.database.db, row.hostId) : null;
  if (!host) return 'missing';
  try {
    const res = await ctx.agents.client(host).getCapsule({ id: row.id });
    const state = res.capsule ? fromAgentState(res.capsule.state) : 'error';
    if (state === 'running' || state === 'starting') return state;
    return 'missing';
  } catch (err) {
    return err instanceof NotFoundError ? 'missing' : 'unknown';
  }
}

/**
 * The capsule an earlier attempt with the key made, once it runs; undefined when that attempt
 * failed or was cut off and the key is free again (the caller claims it anew).
 */
async function settleEarlierCreate(
  ctx: ControlPlaneContext,
  teamId: string,
  key: string,
  claim: Extract<CreateKeyClaim, { claimed: false }>,
  deadline: number,
): Promise<Capsule | undefined> {
  const db = ctx.database.db;
  const release = async () => {
    await releaseCreateKey(db, teamId, key, claim.capsuleId);
    return undefined;
  };
  // The host must say "running" twice in a row before a replay adopts a capsule still recorded as
  // starting: the first attempt, if alive, records it running within milliseconds of that.
  let runningSeen = 0;
  for (;;) {
    const row = await getCapsule(db, claim.capsuleId, teamId);
    const cutOff = Date.now() - claim.claimedAt.getTime() > ORPHAN_AFTER_MS;
    if (!row) {
      // The claimant has not written its row yet, or died before it did.
      if (cutOff) return release();
    } else if (row.state === 'stopped' || row.state === 'error') {
      // That attempt failed, or its capsule has ended since: a new one may be made.
      return release();
    } else if (row.state !== 'starting') {
      return row;
    } else {
      const view = await hostViewOf(ctx, row);
      if (view === 'running' && ++runningSeen >= 2) {
        const adopted = await adopt(ctx, teamId, row);
        if (adopted) return adopted;
      } else if (view === 'missing' && cutOff) {
        await giveUp(ctx, row);
        return release();
      }
      if (view !== 'running') runningSeen = 0;
    }
    if (Date.now() > deadline)
      throw new UnavailableError(
        `an earlier create with this Idempotency-Key (capsule ${claim.capsuleId}) has not finished; retry later`,
        { code: 'create_in_progress' },
      );
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Records as running a capsule its host runs but whose create was cut off, and starts its template's processes. */
async function adopt(ctx: ControlPlaneContext, teamId: string, row: Capsule): Promise<Capsule | undefined> {
  const running = await transitionCapsule(
    ctx.database.db,
    row.id,
    'running',
    { from: ['starting'] },
    {
      kind: 'capsule.created',
      data: { template: row.template, host_id: row.hostId, runtime: row.runtime, adopted_by_replay: true },
    },
  );
  if (!running) return undefined;
  ctx.evictProxy(row.id);
  const host = running.hostId ? await getHost(ctx.database.db, running.hostId) : null;
  if (host) {
    const config = await resolveTemplate(ctx, teamId, running.template)
      .then((t) => templateConfigFor(ctx, t))
      .catch(() => null);
    await startFromTemplateConfig(ctx, teamId, running, host, config);
  }
  return running;
}

/** A starting capsule whose host never got it (its create was cut off before asking): error, with an event. */
async function giveUp(ctx: ControlPlaneContext, row: Capsule): Promise<void> {
  const message = 'create cut off: the control plane making it went away before its host got it';
  const changed = await transitionCapsule(
    ctx.database.db,
    row.id,
    'error',
    { from: ['starting'], error: message },
    { kind: 'capsule.error', data: { during: 'create', message, host_id: row.hostId } },
  );
  if (!changed) return;
  ctx.evictProxy(row.id);
  const host = row.hostId ? await getHost(ctx.database.db, row.hostId) : null;
  if (host)
    await ctx.agents
      .client(host)
      .destroyCapsule({ id: row.id })
      .catch(() => undefined);
}
