// Template references, E2B's and the native API's: 'name' or 'name:tag'. 'default' (or no tag) means the name's latest
// build, which is what the template of that name holds; other tags point at one build each
// (db/repositories/template-tags.ts), an older one kept under an internal name
// (services/tagged-builds.ts).
import { ConflictError, InvalidArgumentError, NotFoundError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import { getBuild } from '../db/repositories/template-builds.js';
import { taggedBuildId } from '../db/repositories/template-tags.js';
import { validateTemplateName } from '../db/repositories/templates.js';
import { isKeptBuildName, isLayerName } from '../templates/layer-names.js';
import { keptTemplateOf, latestReadyBuild } from './tagged-builds.js';

/** The tag every name has: its latest build. */
export const DEFAULT_TAG = 'default';
/** E2B's tag rule: letters, digits, '.', '_' and '-', starting with a letter or digit. */
const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateTag(tag: string): string {
  if (!TAG_RE.test(tag))
    throw new InvalidArgumentError(
      `tag '${tag.slice(0, 140)}' is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  return tag;
}

/** 'name' or 'name:tag' (plus extra tags) as a template name and its tags, all validated. */
export function parseTemplateRef(given: string, extraTags: readonly string[] = []): { name: string; tags: string[] } {
  const colon = given.indexOf(':');
  const name = colon < 0 ? given : given.slice(0, colon);
  if (name === '') throw new InvalidArgumentError(`'${given.slice(0, 140)}' has no template name before ':'`);
  const tags = [...(colon < 0 ? [] : [given.slice(colon + 1)]), ...extraTags].map(validateTag);
  validateTemplateName(name);
  if (isLayerName(name) || isKeptBuildName(name))
    throw new InvalidArgumentError(`template names starting with 'layer-' or 'kept-' are reserved`);
  return { name, tags: [...new Set(tags)] };
}

/** Tags kept in the table ('default' is never stored: it always means the latest build). */
export const storedTags = (tags: readonly string[]): string[] => tags.filter((t) => t !== DEFAULT_TAG);

/** The build id 'name:tag' points at (the latest ready build for 'default'), or NotFound. */
export async function buildIdOfRef(ctx: ControlPlaneContext, teamId: string, name: string, tag: string | undefined) {
  if (tag === undefined || tag === DEFAULT_TAG) {
    const b = await latestReadyBuild(ctx, teamId, name);
    if (!b) throw new NotFoundError(`template '${name}' has no finished build`);
    return b.id;
  }
  const id = await taggedBuildId(ctx.database.db, teamId, name, tag);
  if (!id) throw new NotFoundError(`template '${name}' has no tag '${tag}'`);
  return id;
}

/**
 * The template a sandbox of 'name:tag' starts from: the name itself when the tag points at its
 * latest build, the kept template of an older tagged build; a tag of a build not finished, failed
 * or gone is refused with the reason.
 */
export async function templateOfRef(ctx: ControlPlaneContext, teamId: string, ref: string): Promise<string> {
  if (!ref.includes(':')) return ref;
  const { name, tags } = parseTemplateRef(ref);
  const tag = tags[0];
  if (tag === undefined || tag === DEFAULT_TAG) return name;
  const id = await buildIdOfRef(ctx, teamId, name, tag);
  const latest = await latestReadyBuild(ctx, teamId, name);
  if (latest?.id === id) return name;
  const kept = await keptTemplateOf(ctx, teamId, id);
  if (kept) return kept.name;
  const b = await getBuild(ctx.database.db, id, teamId);
  if (b && (b.status === 'pending' || b.status === 'building'))
    throw new ConflictError(`the build ${id} tagged '${name}:${tag}' is not finished yet`);
  throw new NotFoundError(
    `the build ${id} tagged '${name}:${tag}' ${b?.status === 'error' ? 'failed' : 'is gone (its template was replaced or deleted)'}`,
  );
}
