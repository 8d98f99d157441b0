// Template builds (Dockerfile / snapshot jobs): status, accumulated log text, outcome.
import type { Kysely, Selectable, Updateable } from 'kysely';
import { sql } from 'kysely';
import { newBuildId } from '../../ids.js';
import { nonEmpty, oneOf, toDate, toDateOrNull } from '../codec.js';
import type { Database, TemplateBuildsTable } from '../schema.js';

export const BUILD_STATUSES = ['pending', 'building', 'ready', 'error'] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];

export interface TemplateBuild {
  id: string;
  template: string;
  teamId: string | null;
  status: BuildStatus;
  logs: string;
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  /** Capsule defaults asked for the template (E2B cpuCount/memoryMB); null: the usual defaults. */
  vcpus: number | null;
  memoryMb: number | null;
  /** Where a failed build stopped: 'base', a step number (its Dockerfile line, or E2B's step index), 'finalize'. */
  failedStep: string | null;
}

export const toBuild = (r: Selectable<TemplateBuildsTable>): TemplateBuild => ({
  id: r.id,
  template: r.template,
  teamId: r.team_id,
  status: r.status as BuildStatus,
  logs: r.logs,
  error: r.error,
  startedAt: toDate(r.started_at),
  finishedAt: toDateOrNull(r.finished_at),
  vcpus: r.vcpus ?? null,
  memoryMb: r.memory_mb ?? null,
  failedStep: r.failed_step ?? null,
});

export async function createBuild(
  db: Kysely<Database>,
  input: {
    template: string;
    teamId: string | null;
    status?: BuildStatus;
    vcpus?: number | undefined;
    memoryMb?: number | undefined;
  },
): Promise<TemplateBuild> {
  const row: Selectable<TemplateBuildsTable> = {
    id: newBuildId(),
    template: nonEmpty(input.template, 'template'),
    team_id: input.teamId,
    status: oneOf(input.status ?? 'pending', BUILD_STATUSES, 'build status'),
    logs: '',
    error: null,
    started_at: Date.now(),
    finished_at: null,
    vcpus: input.vcpus ?? null,
    memory_mb: input.memoryMb ?? null,
    failed_step: null,
  };
  await db.insertInto('template_builds').values(row).execute();
  return toBuild(row);
}

export async function getBuild(
  db: Kysely<Database>,
  id: string,
  teamId?: string | null,
): Promise<TemplateBuild | null> {
  let q = db.selectFrom('template_builds').selectAll().where('id', '=', id);
  if (teamId !== undefined)
    q = q.where((eb) => (teamId === null ? eb('team_id', 'is', null) : eb('team_id', '=', teamId)));
  const r = await q.executeTakeFirst();
  return r ? toBuild(r) : null;
}

/** Newest first. */
export async function listBuilds(
  db: Kysely<Database>,
  filter: { teamId?: string | null; template?: string; limit?: number } = {},
): Promise<TemplateBuild[]> {
  let q = db.selectFrom('template_builds').selectAll();
  if (filter.teamId !== undefined) {
    const teamId = filter.teamId;
    q = q.where((eb) => (teamId === null ? eb('team_id', 'is', null) : eb('team_id', '=', teamId)));
  }
  if (filter.template !== undefined) q = q.where('template', '=', filter.template);
  const rows = await q
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc')
    .limit(filter.limit ?? 100)
    .execute();
  return rows.map(toBuild);
}

/** Appends text to the build log in one statement (no read-modify-write race). */
export async function appendBuildLog(db: Kysely<Database>, id: string, text: string): Promise<void> {
  if (text.length === 0) return;
  await db
    .updateTable('template_builds')
    .set({ logs: sql<string>`logs || ${text}` })
    .where('id', '=', id)
    .execute();
}

/** Sets the status; ready/error also record finishedAt (and the error message). */
export async function setBuildStatus(
  db: Kysely<Database>,
  id: string,
  status: BuildStatus,
  error: string | null = null,
  failedStep: string | null = null,
): Promise<TemplateBuild | null> {
  const set: Updateable<TemplateBuildsTable> = { status: oneOf(status, BUILD_STATUSES, 'build status') };
  if (status === 'ready' || status === 'error') set.finished_at = Date.now();
  if (status === 'error') {
    set.error = error ?? 'build failed';
    set.failed_step = failedStep;
  }
  await db.updateTable('template_builds').set(set).where('id', '=', id).execute();
  return getBuild(db, id);
}
