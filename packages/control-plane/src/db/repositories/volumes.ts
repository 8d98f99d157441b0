// Volumes of a team (migrations/0006) and the capsules that mount them.
import type { Kysely, Selectable } from 'kysely';
import type { Database, VolumesTable } from '../schema.js';

export interface Volume {
  id: string;
  teamId: string;
  name: string;
  sizeMb: number;
  hostId: string;
  token: string;
  createdAt: Date;
}

export interface VolumeMountRow {
  volumeId: string;
  name: string;
  path: string;
}

const toVolume = (r: Selectable<VolumesTable>): Volume => ({
  id: r.id,
  teamId: r.team_id,
  name: r.name,
  sizeMb: Number(r.size_mb),
  hostId: r.host_id,
  token: r.token,
  createdAt: new Date(Number(r.created_at)),
});

export async function insertVolume(db: Kysely<Database>, v: Volume): Promise<void> {
  await db
    .insertInto('volumes')
    .values({
      id: v.id,
      team_id: v.teamId,
      name: v.name,
      size_mb: v.sizeMb,
      host_id: v.hostId,
      token: v.token,
      created_at: v.createdAt.getTime(),
    })
    .execute();
}

/** The team's volume by id (null when absent or another team's). */
export async function getVolume(db: Kysely<Database>, teamId: string, id: string): Promise<Volume | null> {
  const r = await db
    .selectFrom('volumes')
    .selectAll()
    .where('id', '=', id)
    .where('team_id', '=', teamId)
    .executeTakeFirst();
  return r ? toVolume(r) : null;
}

/** A volume by id alone (the content API, which authenticates with the volume's own token). */
export async function getVolumeById(db: Kysely<Database>, id: string): Promise<Volume | null> {
  const r = await db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toVolume(r) : null;
}

export async function getVolumeByName(db: Kysely<Database>, teamId: string, name: string): Promise<Volume | null> {
  const r = await db
    .selectFrom('volumes')
    .selectAll()
    .where('name', '=', name)
    .where('team_id', '=', teamId)
    .executeTakeFirst();
  return r ? toVolume(r) : null;
}

export async function listVolumes(db: Kysely<Database>, teamId: string): Promise<Volume[]> {
  const rows = await db
    .selectFrom('volumes')
    .selectAll()
    .where('team_id', '=', teamId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(toVolume);
}

export async function deleteVolumeRow(db: Kysely<Database>, id: string): Promise<void> {
  await db.deleteFrom('capsule_volumes').where('volume_id', '=', id).execute();
  await db.deleteFrom('volumes').where('id', '=', id).execute();
}

/** Capsules that mount the volume and may still run (not stopped; a failed one was removed by its agent). */
export async function capsulesUsingVolume(
  db: Kysely<Database>,
  volumeId: string,
): Promise<{ id: string; state: string }[]> {
  return db
    .selectFrom('capsule_volumes')
    .innerJoin('capsules', 'capsules.id', 'capsule_volumes.capsule_id')
    .select(['capsules.id as id', 'capsules.state as state'])
    .where('capsule_volumes.volume_id', '=', volumeId)
    .where('capsules.state', 'not in', ['stopped', 'error'])
    .execute();
}

export async function setCapsuleVolumes(
  db: Kysely<Database>,
  capsuleId: string,
  mounts: readonly { volumeId: string; path: string }[],
): Promise<void> {
  if (mounts.length === 0) return;
  await db
    .insertInto('capsule_volumes')
    .values(mounts.map((m) => ({ capsule_id: capsuleId, volume_id: m.volumeId, path: m.path })))
    .execute();
}

export async function capsuleVolumeMounts(db: Kysely<Database>, capsuleId: string): Promise<VolumeMountRow[]> {
  const rows = await db
    .selectFrom('capsule_volumes')
    .innerJoin('volumes', 'volumes.id', 'capsule_volumes.volume_id')
    .select(['volumes.id as volumeId', 'volumes.name as name', 'capsule_volumes.path as path'])
    .where('capsule_volumes.capsule_id', '=', capsuleId)
    .orderBy('capsule_volumes.path')
    .execute();
  return rows;
}

/** The volume mounts of several capsules at once (listings), by capsule id. */
export async function volumeMountsOfCapsules(
  db: Kysely<Database>,
  capsuleIds: readonly string[],
): Promise<Map<string, { name: string; path: string }[]>> {
  const out = new Map<string, { name: string; path: string }[]>();
  if (capsuleIds.length === 0) return out;
  const rows = await db
    .selectFrom('capsule_volumes')
    .innerJoin('volumes', 'volumes.id', 'capsule_volumes.volume_id')
    .select(['capsule_volumes.capsule_id as capsuleId', 'volumes.name as name', 'capsule_volumes.path as path'])
    .where('capsule_volumes.capsule_id', 'in', [...capsuleIds])
    .orderBy('capsule_volumes.path')
    .execute();
  for (const r of rows) {
    const list = out.get(r.capsuleId) ?? [];
    list.push({ name: r.name, path: r.path });
    out.set(r.capsuleId, list);
  }
  return out;
}
