// Snapshot templates: a capsule's disk (and, where the runtime keeps it, memory) saved on its host
// as a template new capsules start from. Snapshots are host-local, so the template row records the
// host and the scheduler places capsules made from it there.
//
// Deleting a template refuses (409) while any of the team's capsules made from it still exist
// (starting, running, paused or hibernated): a capsule's copy-on-write layer sits on top of the
// template's files, and a hibernated one boots from them again on resume, so removing them would
// break capsules that look healthy. Destroy those capsules first.

import { asDomainError, ConflictError, DomainError, domainError, messageOf, NotFoundError } from '@wrenn/protocol';
import type { Template as PbTemplate } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../context.js';
import { capsuleIdsUsingTemplate } from '../db/repositories/capsules-extra.js';
import { getHost } from '../db/repositories/hosts.js';
import {
  createTemplate,
  deleteTemplate as deleteTemplateRow,
  listTemplates as listTemplateRows,
  resolveTemplate as resolveTemplateRow,
  type Template,
  type TemplateKind,
  updateTemplate,
  validateTemplateName,
} from '../db/repositories/templates.js';
import { isLayerName } from '../templates/layer-names.js';
import { agentForCapsule, type Capsule, LIVE_STATES, recordEvent, requireCapsuleState } from './capsules.js';
import { agentTemplateName, assertNotBuiltin } from './templates.js';

/** Snapshots a running or paused capsule into a new team template `name`. */
export async function createSnapshot(
  ctx: ControlPlaneContext,
  teamId: string,
  input: { capsuleId: string; name: string },
): Promise<Template> {
  validateTemplateName(input.name);
  assertNotBuiltin(input.name, 'replaced by a snapshot; pick another name');
  const c = await requireCapsuleState(ctx, teamId, input.capsuleId, ['running', 'paused'], 'snapshot');
  return snapshotCapsule(ctx, teamId, c, { name: input.name, kind: 'snapshot' });
}

/**
 * Saves capsule `c` on its host as team template `name` of `kind`: the one path for the API's
 * snapshots and the Dockerfile builder's layers ('snapshot') and finished templates ('dockerfile').
 * The caller has checked the name and the capsule's state.
 */
export async function snapshotCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  c: Capsule,
  target: { name: string; kind: TemplateKind },
): Promise<Template> {
  const agent = await agentForCapsule(ctx, c);
  // The row first: it reserves the name within the team (unique index) and gives the id the agent
  // stores the files under.
  const row = await createTemplate(ctx.database.db, {
    name: target.name,
    kind: target.kind,
    teamId,
    hostId: c.hostId,
    parent: c.template,
    vcpus: c.vcpus,
    memoryMb: c.memoryMb,
    runtimes: [c.runtime],
  });
  let made: PbTemplate | undefined;
  try {
    made = (await agent.createSnapshot({ capsuleId: c.id, name: agentTemplateName(row) })).template;
  } catch (err) {
    await deleteTemplateRow(ctx.database.db, teamId, row.name).catch(() => null);
    throw err;
  }
  const updated = await updateTemplate(ctx.database.db, row.id, {
    sizeBytes: Number(made?.sizeBytes ?? 0n),
    ...(made?.vcpus ? { vcpus: made.vcpus } : {}),
    ...(made?.memoryMb ? { memoryMb: made.memoryMb } : {}),
    ...(made?.runtimes.length ? { runtimes: made.runtimes } : {}),
  });
  // The agent may have paused the capsule for the snapshot and resumed it; its route is unchanged
  // but cached connection state is cheap to drop.
  ctx.evictProxy(c.id);
  await recordEvent(ctx, teamId, c.id, 'snapshot.created', {
    name: row.name,
    template_id: row.id,
    kind: row.kind,
    size_bytes: updated?.sizeBytes ?? 0,
  });
  return updated ?? row;
}

/** The team's snapshot templates, by name. */
export async function listSnapshots(ctx: ControlPlaneContext, teamId: string): Promise<Template[]> {
  const rows = await listTemplateRows(ctx.database.db, { teamId, kind: 'snapshot' });
  return rows.filter((t) => t.teamId === teamId && !isLayerName(t.name));
}

/**
 * Deletes a team template (any kind) and its files on the host holding them. Built-ins cannot be
 * deleted; a template still used by live capsules is refused with 409 naming them.
 */
export async function deleteTemplate(
  ctx: ControlPlaneContext,
  teamId: string,
  name: string,
  opts: { kind?: Template['kind'] } = {},
): Promise<Template> {
  const what = opts.kind === 'snapshot' ? 'snapshot' : 'template';
  const row = await resolveTemplateRow(ctx.database.db, teamId, name);
  if (!row || row.teamId !== teamId || (opts.kind && row.kind !== opts.kind)) {
    assertNotBuiltin(name, 'deleted');
    throw new NotFoundError(`${what} '${name}' not found`);
  }
  const users = await capsuleIdsUsingTemplate(ctx.database.db, teamId, row.name, LIVE_STATES);
  if (users.length > 0) {
    const list = users.slice(0, 5).join(', ') + (users.length > 5 ? `, ... (${users.length} in all)` : '');
    throw new ConflictError(`${what} '${name}' is used by capsules ${list}; destroy them first`);
  }
  // An image template's files are the host's shared copy of the image (other teams may use it).
  if (row.hostId && row.kind !== 'image') {
    const host = await getHost(ctx.database.db, row.hostId);
    if (host) {
      try {
        await ctx.agents.client(host).deleteSnapshot({ name: agentTemplateName(row) });
      } catch (err) {
        // Already gone from the host: only the record is left to remove.
        if (!(err instanceof NotFoundError)) {
          const e = asDomainError(err);
          const message = `could not delete ${what} '${name}' on host ${host.id}: ${messageOf(e)}`;
          throw e instanceof DomainError
            ? domainError(e.kind, message, { code: e.code, cause: err })
            : new Error(message, { cause: err });
        }
      }
    }
  }
  await deleteTemplateRow(ctx.database.db, teamId, row.name);
  await recordEvent(ctx, teamId, null, `${what}.deleted`, { name: row.name, template_id: row.id });
  return row;
}

export const deleteSnapshot = (ctx: ControlPlaneContext, teamId: string, name: string): Promise<Template> =>
  deleteTemplate(ctx, teamId, name, { kind: 'snapshot' });
