// Builds a tag still points at outlive newer builds of their name: when a build replaces the
// template of a name, the previous build's template is kept under an internal name
// (kept-<build id>) if any tag points at that build, instead of being deleted, so
// `Sandbox.create('name:tag')` still starts it. Kept builds go when no tag points at them any more
// or the template is deleted.
import type { ControlPlaneContext } from '../context.js';
import { getBuild, listBuilds } from '../db/repositories/template-builds.js';
import { deleteTemplateTags, listTemplateTags } from '../db/repositories/template-tags.js';
import {
  listTemplates as listTemplateRows,
  renameTemplate,
  resolveTemplate as resolveTemplateRow,
} from '../db/repositories/templates.js';
import { buildIdOfKeptName, isKeptBuildName, keptBuildName } from '../templates/layer-names.js';
import { deleteTemplate } from './snapshots.js';

/** The latest finished build of a team's template name, or null. */
export async function latestReadyBuild(ctx: ControlPlaneContext, teamId: string, name: string) {
  const builds = await listBuilds(ctx.database.db, { teamId, template: name, limit: 50 });
  return builds.find((b) => b.status === 'ready') ?? null;
}

/**
 * Called by a build about to replace the template `name`: keeps the replaced template under its
 * build's kept name when a tag points at that build. Returns whether it was kept (else the caller
 * deletes it as before).
 */
export async function keepTaggedBuild(ctx: ControlPlaneContext, teamId: string, name: string): Promise<boolean> {
  const held = await latestReadyBuild(ctx, teamId, name);
  if (!held) return false;
  const tags = await listTemplateTags(ctx.database.db, teamId, name);
  if (!tags.some((t) => t.buildId === held.id)) return false;
  const row = await resolveTemplateRow(ctx.database.db, teamId, name);
  if (!row || row.teamId !== teamId) return false;
  await renameTemplate(ctx.database.db, row.id, keptBuildName(held.id));
  return true;
}

/** The kept template of a build of `name`, or null. */
export async function keptTemplateOf(ctx: ControlPlaneContext, teamId: string, buildId: string) {
  const row = await resolveTemplateRow(ctx.database.db, teamId, keptBuildName(buildId));
  return row && row.teamId === teamId ? row : null;
}

/** Deletes the kept builds of `name` no tag points at any more (all of them with `all`). */
export async function dropUntaggedKeptBuilds(
  ctx: ControlPlaneContext,
  teamId: string,
  name: string,
  all = false,
): Promise<void> {
  const tagged = new Set(all ? [] : (await listTemplateTags(ctx.database.db, teamId, name)).map((t) => t.buildId));
  const rows = await listTemplateRows(ctx.database.db, { teamId });
  for (const r of rows) {
    if (r.teamId !== teamId || !isKeptBuildName(r.name)) continue;
    const buildId = buildIdOfKeptName(r.name);
    if (tagged.has(buildId)) continue;
    const b = await getBuild(ctx.database.db, buildId, teamId);
    if (b && b.template !== name) continue;
    // One a capsule still runs from stays until a later clean-up finds it unused.
    await deleteTemplate(ctx, teamId, r.name).catch((err: unknown) =>
      ctx.log.warn({ err, template: r.name }, 'could not delete an untagged kept build yet'),
    );
  }
}

/** Deletes a team template with its tags and the older builds they kept (E2B and native delete). */
export async function deleteTemplateWithTags(ctx: ControlPlaneContext, teamId: string, name: string): Promise<void> {
  const deleted = await deleteTemplate(ctx, teamId, name);
  await dropUntaggedKeptBuilds(ctx, teamId, deleted.name, true);
  await deleteTemplateTags(ctx.database.db, teamId, deleted.name);
}
