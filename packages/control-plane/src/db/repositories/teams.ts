import type { Kysely, Selectable } from 'kysely';
import { newTeamId } from '../../ids.js';
import { nonEmpty, toDate } from '../codec.js';
import type { Database, TeamsTable } from '../schema.js';

export interface Team {
  id: string;
  name: string;
  createdAt: Date;
}

export const toTeam = (r: Selectable<TeamsTable>): Team => ({
  id: r.id,
  name: r.name,
  createdAt: toDate(r.created_at),
});

export async function createTeam(db: Kysely<Database>, input: { name: string; id?: string }): Promise<Team> {
  const row = { id: input.id ?? newTeamId(), name: nonEmpty(input.name, 'team name'), created_at: Date.now() };
  await db.insertInto('teams').values(row).execute();
  return toTeam(row);
}

export async function getTeam(db: Kysely<Database>, id: string): Promise<Team | null> {
  const r = await db.selectFrom('teams').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toTeam(r) : null;
}

export async function listTeams(db: Kysely<Database>): Promise<Team[]> {
  const rows = await db.selectFrom('teams').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toTeam);
}

export async function renameTeam(db: Kysely<Database>, id: string, name: string): Promise<Team | null> {
  await db
    .updateTable('teams')
    .set({ name: nonEmpty(name, 'team name') })
    .where('id', '=', id)
    .execute();
  return getTeam(db, id);
}

/** Deletes the team with its API keys, capsules (rows only) and templates. Returns false if it did not exist. */
export async function deleteTeam(db: Kysely<Database>, id: string): Promise<boolean> {
  const r = await db.deleteFrom('teams').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}
