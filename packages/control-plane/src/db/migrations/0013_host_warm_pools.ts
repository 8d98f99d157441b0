// Warm pools per host. `warm_pools`: what the host's agent last reported of its warm pools (JSON:
// {at, pools: [{template, ready, target, runtime, vcpus, memory_mb}]}, null before it said), so any
// replica's scheduler can send a create to a host holding a ready capsule of its template: the
// heartbeats are pulled by the one replica holding the lease, so an in-memory copy would exist on
// that replica only. `warm_pool_target`: the sizes an admin set through the API (JSON template ->
// count), pushed to the agent and pushed again when it restarts; null: the agent's own --warm-pool.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').addColumn('warm_pools', 'text').execute();
  await db.schema.alterTable('hosts').addColumn('warm_pool_target', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('warm_pool_target').execute();
  await db.schema.alterTable('hosts').dropColumn('warm_pools').execute();
}
