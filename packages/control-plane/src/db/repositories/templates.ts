// Templates capsules start from: global built-ins (teamId null) and each team's own.
// A name is unique within its scope; a team's template shadows a built-in of the same name.
import type { TemplateFields } from '@wrenn/protocol';
import type { Kysely, Selectable, Updateable } from 'kysely';
import { newTemplateId } from '../../ids.js';
import { nonEmpty, nonNegativeInt, oneOf, parseJson, positiveInt, toDate } from '../codec.js';
import { DbError, isUniqueViolation } from '../errors.js';
import type { Database, TemplatesTable } from '../schema.js';

export const TEMPLATE_KINDS = ['base', 'snapshot', 'dockerfile', 'image'] as const;
export type TemplateKind = (typeof TEMPLATE_KINDS)[number];

/** The contract's template fields (@wrenn/protocol TemplateFields) and the team it belongs to. */
export interface Template extends TemplateFields {
  kind: TemplateKind;
  teamId: string | null;
  /** The host holding a snapshot template's files (snapshots are host-local); null for base images. */
  hostId: string | null;
  /** Template this one was derived from. */
  parent: string | null;
}

export interface NewTemplate {
  name: string;
  kind: TemplateKind;
  teamId: string | null;
  hostId?: string | null;
  parent?: string | null;
  vcpus: number;
  memoryMb: number;
  runtimes: string[];
  sizeBytes?: number;
}

const namePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function validateTemplateName(name: string): string {
  if (typeof name !== 'string' || !namePattern.test(name)) {
    throw new DbError(
      'invalid_argument',
      `template name '${name}' is not valid: use 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

export const toTemplate = (r: Selectable<TemplatesTable>): Template => ({
  id: r.id,
  name: r.name,
  kind: r.kind as TemplateKind,
  teamId: r.team_id,
  hostId: r.host_id,
  parent: r.parent,
  vcpus: Number(r.vcpus),
  memoryMb: Number(r.memory_mb),
  runtimes: parseJson<string[]>(r.runtimes, []),
  sizeBytes: Number(r.size_bytes),
  createdAt: toDate(r.created_at),
});

/** Throws DbError 'conflict' if the name is taken in that scope. */
export async function createTemplate(db: Kysely<Database>, input: NewTemplate): Promise<Template> {
  const row: Selectable<TemplatesTable> = {
    id: newTemplateId(),
    name: validateTemplateName(input.name),
    kind: oneOf(input.kind, TEMPLATE_KINDS, 'template kind'),
    team_id: input.teamId,
    host_id: input.hostId ?? null,
    parent: input.parent ?? null,
    vcpus: positiveInt(input.vcpus, 'vcpus'),
    memory_mb: positiveInt(input.memoryMb, 'memoryMb'),
    runtimes: JSON.stringify(input.runtimes),
    size_bytes: nonNegativeInt(input.sizeBytes ?? 0, 'sizeBytes'),
    created_at: Date.now(),
  };
  try {
    await db.insertInto('templates').values(row).execute();
  } catch (err) {
    if (isUniqueViolation(err)) {
      const scope = input.teamId === null ? 'built-in templates' : 'this team';
      throw new DbError(
        'conflict',
        `a template named '${input.name}' already exists in ${scope}; pick another name or delete it first`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
  return toTemplate(row);
}

/** The template `name` as `teamId` sees it: its own first, else the built-in. */
export async function resolveTemplate(
  db: Kysely<Database>,
  teamId: string | null,
  name: string,
): Promise<Template | null> {
  const rows = await db
    .selectFrom('templates')
    .selectAll()
    .where('name', '=', name)
    .where((eb) =>
      teamId === null ? eb('team_id', 'is', null) : eb.or([eb('team_id', '=', teamId), eb('team_id', 'is', null)]),
    )
    .execute();
  const own = rows.find((r) => r.team_id !== null);
  const row = own ?? rows[0];
  return row ? toTemplate(row) : null;
}

export async function getTemplateById(db: Kysely<Database>, id: string): Promise<Template | null> {
  const r = await db.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toTemplate(r) : null;
}

/** Built-ins plus the team's own (pass null for built-ins only), ordered by name then scope. */
export async function listTemplates(
  db: Kysely<Database>,
  filter: { teamId: string | null; kind?: TemplateKind; hostId?: string },
): Promise<Template[]> {
  let q = db
    .selectFrom('templates')
    .selectAll()
    .where((eb) =>
      filter.teamId === null
        ? eb('team_id', 'is', null)
        : eb.or([eb('team_id', '=', filter.teamId), eb('team_id', 'is', null)]),
    );
  if (filter.kind) q = q.where('kind', '=', filter.kind);
  if (filter.hostId) q = q.where('host_id', '=', filter.hostId);
  const rows = await q.orderBy('name').orderBy('id').execute();
  return rows.map(toTemplate);
}

export interface TemplatePatch {
  hostId?: string | null;
  sizeBytes?: number;
  vcpus?: number;
  memoryMb?: number;
  runtimes?: string[];
}

export async function updateTemplate(db: Kysely<Database>, id: string, patch: TemplatePatch): Promise<Template | null> {
  const set: Updateable<TemplatesTable> = {};
  if (patch.hostId !== undefined) set.host_id = patch.hostId;
  if (patch.sizeBytes !== undefined) set.size_bytes = nonNegativeInt(patch.sizeBytes, 'sizeBytes');
  if (patch.vcpus !== undefined) set.vcpus = positiveInt(patch.vcpus, 'vcpus');
  if (patch.memoryMb !== undefined) set.memory_mb = positiveInt(patch.memoryMb, 'memoryMb');
  if (patch.runtimes !== undefined) set.runtimes = JSON.stringify(patch.runtimes);
  if (Object.keys(set).length > 0) await db.updateTable('templates').set(set).where('id', '=', id).execute();
  return getTemplateById(db, id);
}

/** Gives a template another name (internal names only: the caller picks a name no user can take). */
export async function renameTemplate(db: Kysely<Database>, id: string, name: string): Promise<void> {
  await db
    .updateTable('templates')
    .set({ name: nonEmpty(name, 'template name') })
    .where('id', '=', id)
    .execute();
}

/** Deletes a team's template (teamId null: a built-in). Returns the deleted template or null. */
export async function deleteTemplate(
  db: Kysely<Database>,
  teamId: string | null,
  name: string,
): Promise<Template | null> {
  const found = await db
    .selectFrom('templates')
    .selectAll()
    .where('name', '=', nonEmpty(name, 'template name'))
    .where((eb) => (teamId === null ? eb('team_id', 'is', null) : eb('team_id', '=', teamId)))
    .executeTakeFirst();
  if (!found) return null;
  await db.deleteFrom('templates').where('id', '=', found.id).execute();
  return toTemplate(found);
}
