// Template tags (E2B's name:tag): which build of a team's template name each tag points at.
import type { Kysely } from 'kysely';
import { toDate } from '../codec.js';
import type { Database } from '../schema.js';

export interface TemplateTag {
  tag: string;
  buildId: string;
  createdAt: Date;
}

/** Points each tag at the build (moving a tag that pointed elsewhere). */
export async function setTemplateTags(
  db: Kysely<Database>,
  teamId: string,
  template: string,
  tags: readonly string[],
  buildId: string,
): Promise<void> {
  await db.transaction().execute(async (tx) => {
    for (const tag of new Set(tags)) {
      await tx
        .deleteFrom('template_tags')
        .where('team_id', '=', teamId)
        .where('template', '=', template)
        .where('tag', '=', tag)
        .execute();
      await tx
        .insertInto('template_tags')
        .values({ team_id: teamId, template, tag, build_id: buildId, created_at: Date.now() })
        .execute();
    }
  });
}

/** The build a tag points at, or null. */
export async function taggedBuildId(
  db: Kysely<Database>,
  teamId: string,
  template: string,
  tag: string,
): Promise<string | null> {
  const r = await db
    .selectFrom('template_tags')
    .select('build_id')
    .where('team_id', '=', teamId)
    .where('template', '=', template)
    .where('tag', '=', tag)
    .executeTakeFirst();
  return r?.build_id ?? null;
}

export async function listTemplateTags(db: Kysely<Database>, teamId: string, template: string): Promise<TemplateTag[]> {
  const rows = await db
    .selectFrom('template_tags')
    .selectAll()
    .where('team_id', '=', teamId)
    .where('template', '=', template)
    .orderBy('created_at')
    .execute();
  return rows.map((r) => ({ tag: r.tag, buildId: r.build_id, createdAt: toDate(r.created_at) }));
}

/** Removes the given tags (all of the template's tags when none are given). */
export async function deleteTemplateTags(
  db: Kysely<Database>,
  teamId: string,
  template: string,
  tags?: readonly string[],
): Promise<void> {
  let q = db.deleteFrom('template_tags').where('team_id', '=', teamId).where('template', '=', template);
  if (tags) {
    if (tags.length === 0) return;
    q = q.where('tag', 'in', [...tags]);
  }
  await q.execute();
}

/** Every tag of the team's templates, by template name (each name's tags in the order they were set). */
export async function listTeamTemplateTags(db: Kysely<Database>, teamId: string): Promise<Map<string, string[]>> {
  const rows = await db
    .selectFrom('template_tags')
    .select(['template', 'tag'])
    .where('team_id', '=', teamId)
    .orderBy('created_at')
    .orderBy('tag')
    .execute();
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.template, [...(out.get(r.template) ?? []), r.tag]);
  return out;
}
