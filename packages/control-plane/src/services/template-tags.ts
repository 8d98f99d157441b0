// A team's template tags, for E2B's tags API and the native one: point tags at the build a
// 'name[:tag]' reference names, remove tags, list them ('default' is always the latest finished
// build; it is listed, never stored, moved or removed). Everything is looked up in the caller's
// team only, so another team's name reads exactly like a name that does not exist.
import { InvalidArgumentError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import {
  deleteTemplateTags,
  listTeamTemplateTags,
  listTemplateTags,
  setTemplateTags,
} from '../db/repositories/template-tags.js';
import { dropUntaggedKeptBuilds, latestReadyBuild } from './tagged-builds.js';
import { buildIdOfRef, DEFAULT_TAG, parseTemplateRef, storedTags, validateTag } from './template-refs.js';
import { resolveTemplate } from './templates.js';

export interface TagInfo {
  tag: string;
  buildId: string;
  createdAt: Date;
}

/** Points `tags` at the build `target` ('name' = its latest build, or 'name:tag') names. */
export async function assignTags(
  ctx: ControlPlaneContext,
  teamId: string,
  target: string,
  tags: readonly string[],
): Promise<{ buildId: string; tags: string[] }> {
  const ref = parseTemplateRef(target);
  const newTags = [...new Set(tags.map(validateTag))];
  if (newTags.includes(DEFAULT_TAG))
    throw new InvalidArgumentError(`'${DEFAULT_TAG}' always means the latest build and cannot be assigned`);
  await resolveTemplate(ctx, teamId, ref.name);
  const buildId = await buildIdOfRef(ctx, teamId, ref.name, ref.tags[0]);
  await setTemplateTags(ctx.database.db, teamId, ref.name, newTags, buildId);
  await dropUntaggedKeptBuilds(ctx, teamId, ref.name);
  return { buildId, tags: newTags };
}

/** Removes tags from the template `name` (a build no tag keeps any more is dropped). */
export async function removeTags(
  ctx: ControlPlaneContext,
  teamId: string,
  nameRef: string,
  tags: readonly string[],
): Promise<void> {
  const { name } = parseTemplateRef(nameRef);
  const gone = tags.map(validateTag);
  if (gone.includes(DEFAULT_TAG))
    throw new InvalidArgumentError(`'${DEFAULT_TAG}' is the latest build of '${name}'; delete the template instead`);
  await resolveTemplate(ctx, teamId, name);
  await deleteTemplateTags(ctx.database.db, teamId, name, storedTags(gone));
  await dropUntaggedKeptBuilds(ctx, teamId, name);
}

/** The template's tags, 'default' (its latest build) first. */
export async function listTags(ctx: ControlPlaneContext, teamId: string, nameRef: string): Promise<TagInfo[]> {
  const { name } = parseTemplateRef(nameRef);
  const t = await resolveTemplate(ctx, teamId, name);
  const latest = await latestReadyBuild(ctx, teamId, t.name);
  const listed = (await listTemplateTags(ctx.database.db, teamId, t.name)).map((x) => ({
    tag: x.tag,
    buildId: x.buildId,
    createdAt: x.createdAt,
  }));
  return [{ tag: DEFAULT_TAG, buildId: latest?.id ?? t.id, createdAt: latest?.finishedAt ?? t.createdAt }, ...listed];
}

/** The tags set on each of the team's templates (by name; 'default' is implied and not listed), for template lists. */
export function tagsByTemplate(ctx: ControlPlaneContext, teamId: string): Promise<Map<string, string[]>> {
  return listTeamTemplateTags(ctx.database.db, teamId);
}
