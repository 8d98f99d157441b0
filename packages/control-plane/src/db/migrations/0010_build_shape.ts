// E2B template builds: the cpuCount/memoryMB asked for at POST /v3/templates, kept with the build
// until it runs and made the template's capsule defaults, and the step a failed build stopped at
// (E2B's `reason.step`: 'base', the step's number, or 'finalize').
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('template_builds').addColumn('vcpus', 'integer').execute();
  await db.schema.alterTable('template_builds').addColumn('memory_mb', 'integer').execute();
  await db.schema.alterTable('template_builds').addColumn('failed_step', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const c of ['vcpus', 'memory_mb', 'failed_step'])
    await db.schema.alterTable('template_builds').dropColumn(c).execute();
}
