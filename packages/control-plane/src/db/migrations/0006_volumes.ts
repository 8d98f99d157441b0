// Volumes: persistent named storage of a team, with a size limit each, kept on one host (its
// files are an image there) and mounted into capsules at create. capsule_volumes says which
// capsule mounts which volume where, so a volume in use is not deleted.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('volumes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('size_mb', 'integer', (c) => c.notNull())
    .addColumn('host_id', 'text', (c) => c.notNull())
    /** Bearer token of the volume content API (one per volume; shown to its team). */
    .addColumn('token', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('volumes_team_name').on('volumes').columns(['team_id', 'name']).unique().execute();
  await db.schema
    .createTable('capsule_volumes')
    .addColumn('capsule_id', 'text', (c) => c.notNull().references('capsules.id').onDelete('cascade'))
    .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
    .addColumn('path', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('capsule_volumes_pk', ['capsule_id', 'path'])
    .execute();
  await db.schema.createIndex('capsule_volumes_volume').on('capsule_volumes').column('volume_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('capsule_volumes').ifExists().execute();
  await db.schema.dropTable('volumes').ifExists().execute();
}
