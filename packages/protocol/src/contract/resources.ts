// The native API's other response shapes a client reads (metrics, events, files, processes,
// templates, hosts, API keys) as TypeBox schemas: the control plane serves and documents them, the
// SDK and dashboard take their types from them (type-only imports).
import { type Static, Type } from 'typebox';
import type { Camelized } from './camel.js';
import { DateTime, Nullable } from './json.js';

export const MetricsSchema = Type.Object({
  cpu_used_pct: Type.Number(),
  cpu_count: Type.Integer(),
  mem_used_bytes: Type.Integer(),
  mem_total_bytes: Type.Integer(),
  disk_used_bytes: Type.Integer(),
  disk_total_bytes: Type.Integer(),
  pids: Type.Integer(),
  timestamp: DateTime,
});
export type MetricsJson = Static<typeof MetricsSchema>;

/** One metrics sample as the control plane and the SDK hand it on: MetricsJson in camelCase, with a Date. */
export interface CapsuleMetrics {
  cpuUsedPct: number;
  cpuCount: number;
  memUsedBytes: number;
  memTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
  pids: number;
  timestamp: Date;
}

export const EventSchema = Type.Object({
  id: Type.Integer(),
  kind: Type.String(),
  capsule_id: Nullable(Type.String()),
  data: Type.Record(Type.String(), Type.Unknown()),
  created_at: DateTime,
});
export type AuditEventJson = Static<typeof EventSchema>;

export const FileEntrySchema = Type.Object({
  name: Type.String(),
  path: Type.String(),
  type: Type.String({ description: 'file | dir | symlink' }),
  size: Type.Integer(),
  mode: Type.Integer(),
  owner: Type.String(),
  group: Type.String(),
  modified_at: Nullable(DateTime),
  symlink_target: Type.Optional(Type.String()),
});
export type FileEntryJson = Static<typeof FileEntrySchema>;

export const ProcessSchema = Type.Object({
  pid: Type.Integer(),
  tag: Type.String(),
  cmd: Type.String(),
  args: Type.Array(Type.String()),
  cwd: Type.String(),
});
export type ProcessJson = Static<typeof ProcessSchema>;

export const TemplateSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String({ description: 'base (built-in), snapshot, dockerfile or image (made from a container image)' }),
  builtin: Type.Boolean(),
  host_id: Nullable(Type.String()),
  parent: Nullable(Type.String()),
  vcpus: Type.Integer(),
  memory_mb: Type.Integer(),
  runtimes: Type.Array(Type.String()),
  size_bytes: Type.Integer(),
  created_at: DateTime,
  tags: Type.Array(Type.String(), {
    description:
      "Tags the team set on the template's builds (use as 'name:tag'; 'default', the latest build, is implied and not listed)",
  }),
});
export type TemplateJson = Static<typeof TemplateSchema>;
/** A template's fields as code holds them (the control plane's row, the SDK's TemplateInfo), less what only the API adds. */
export type TemplateFields = Camelized<Omit<TemplateJson, 'builtin' | 'tags'>, 'created_at'>;

/** GET /v1/templates/:ref/tags: one tag and the build it points at ('default' is the latest build). */
export const TemplateTagSchema = Type.Object({ tag: Type.String(), build_id: Type.String(), created_at: DateTime });
export type TemplateTagJson = Static<typeof TemplateTagSchema>;

/** POST /v1/templates/:ref/tags: the build the tags now point at. */
export const AssignedTagsSchema = Type.Object({ build_id: Type.String(), tags: Type.Array(Type.String()) });
export type AssignedTagsJson = Static<typeof AssignedTagsSchema>;

export const HostSchema = Type.Object({
  id: Type.String(),
  status: Type.String(),
  runtimes: Type.Array(Type.String()),
  cpu_count: Type.Integer(),
  memory_mb: Type.Integer(),
  capsules: Type.Integer({ description: 'Capsules holding resources (starting, running, paused)' }),
  allocated_vcpus: Type.Integer(),
  allocated_memory_mb: Type.Integer(),
  last_heartbeat_at: Nullable(DateTime),
  draining: Type.Boolean({
    description: 'Drained by an admin (wrenn host drain): keeps its capsules, takes no new ones',
  }),
  warm_pools: Type.Array(
    Type.Object({
      template: Type.String({ description: "The template as the host's agent names it" }),
      ready: Type.Integer({ description: 'Booted and claimable at the last heartbeat' }),
      target: Type.Integer({ description: 'How many the pool keeps' }),
    }),
    {
      description:
        'Capsules the host keeps booted per template, as its agent last reported; a create of that template (default shape, no egress policy or volumes) goes to a host with a ready one first',
    },
  ),
  warm_pool_target: Nullable(
    Type.Record(Type.String(), Type.Integer(), {
      description:
        'Warm pool sizes an admin set (wrenn host warm-pool), kept and sent to the agent again when it restarts; null: the agent keeps its own --warm-pool',
    }),
  ),
});
export type HostJson = Static<typeof HostSchema>;

export const ApiKeySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String(),
  created_at: DateTime,
  last_used_at: Nullable(DateTime),
  revoked_at: Nullable(DateTime),
});
export type ApiKeyJson = Static<typeof ApiKeySchema>;
