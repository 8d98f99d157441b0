// Finding a team's capsule and the agent that holds it: every operation starts here. Another
// team's capsule is "not found"; a capsule in the wrong state is a conflict that says what to do.
import { ConflictError, InvalidArgumentError, NotFoundError, UnavailableError } from '@wrenn/protocol';
import type { AgentClient } from '../../agents/pool.js';
import type { ControlPlaneContext } from '../../context.js';
import type { Page } from '../../db/pagination.js';
import {
  CAPSULE_STATES,
  type Capsule,
  type CapsuleState,
  getCapsule as getCapsuleRow,
} from '../../db/repositories/capsules.js';
import { listCapsulesWithTemplate } from '../../db/repositories/capsules-extra.js';
import { getHost, type Host } from '../../db/repositories/hosts.js';
import { isCapsuleId } from '../../ids.js';

export interface ListCapsulesInput {
  state?: CapsuleState | readonly CapsuleState[];
  metadata?: Record<string, string>;
  template?: string;
  limit?: number;
  cursor?: string | null;
}

function illegalState(c: Capsule, action: string): ConflictError {
  let hint = '';
  if ((c.state === 'paused' || c.state === 'hibernated') && action !== 'resume') hint = '; resume it first';
  else if (c.state === 'running' && action === 'resume') hint = '; it is already running';
  else if (c.state === 'starting') hint = '; wait until it is running';
  else if (c.state === 'stopped') hint = '; it was destroyed, create a new one';
  else if (c.state === 'error') hint = `; it failed${c.error ? ` (${c.error})` : ''}, destroy it and create a new one`;
  return new ConflictError(`capsule ${c.id} is ${c.state}; cannot ${action} it${hint}`);
}

/** The team's capsule (any state, including stopped); 404 for unknown ids and other teams' capsules. */
export async function getCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  if (!isCapsuleId(id)) throw new NotFoundError(`capsule ${id} not found`);
  const c = await getCapsuleRow(ctx.database.db, id, teamId);
  if (!c) throw new NotFoundError(`capsule ${id} not found`);
  return c;
}

/** The team's capsule, which must be in one of `states` (409 otherwise, naming what to do). */
export async function requireCapsuleState(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  states: readonly CapsuleState[],
  action: string,
): Promise<Capsule> {
  const c = await getCapsule(ctx, teamId, id);
  if (!states.includes(c.state)) throw illegalState(c, action);
  return c;
}

/** Newest first; `nextCursor` continues the listing. Stopped capsules are listed only when asked for by state. */
export async function listCapsules(
  ctx: ControlPlaneContext,
  teamId: string,
  input: ListCapsulesInput = {},
): Promise<Page<Capsule>> {
  if (input.state !== undefined) {
    for (const s of typeof input.state === 'string' ? [input.state] : input.state) {
      if (!(CAPSULE_STATES as readonly string[]).includes(s))
        throw new InvalidArgumentError(`state must be one of ${CAPSULE_STATES.join(', ')}, got '${s}'`);
    }
  }
  const state = input.state ?? CAPSULE_STATES.filter((s) => s !== 'stopped');
  return listCapsulesWithTemplate(ctx.database.db, {
    teamId,
    state,
    ...(input.metadata ? { metadata: input.metadata } : {}),
    ...(input.template ? { template: input.template } : {}),
    ...(input.limit !== undefined ? { limit: input.limit } : {}),
    ...(input.cursor ? { cursor: input.cursor } : {}),
  });
}

/** The host a capsule is placed on; 503 when the host record is gone. */
export async function hostOfCapsule(ctx: ControlPlaneContext, c: Capsule): Promise<Host> {
  const host = c.hostId ? await getHost(ctx.database.db, c.hostId) : null;
  if (!host)
    throw new UnavailableError(`capsule ${c.id} is on host ${c.hostId ?? '(none)'}, which is not registered any more`);
  return host;
}

/** The Connect client of the agent holding the capsule. */
export async function agentForCapsule(ctx: ControlPlaneContext, c: Capsule): Promise<AgentClient> {
  const host = await hostOfCapsule(ctx, c);
  return ctx.agents.client(host);
}

/**
 * The team's capsule (in one of `states`, default running) and its agent client: what the APIs use
 * for streams (exec, PTY, files, processes) that they carry themselves.
 */
export async function capsuleAgent(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  states: readonly CapsuleState[] = ['running'],
  action = 'use',
): Promise<{ capsule: Capsule; agent: AgentClient }> {
  const capsule = await requireCapsuleState(ctx, teamId, id, states, action);
  return { capsule, agent: await agentForCapsule(ctx, capsule) };
}
