// JSON shapes of the native API (snake_case) as TypeBox schemas, so requests are validated by
// Fastify and the OpenAPI document describes them, plus the converters from domain records.
import { type Static, type TSchema, Type } from '@fastify/type-provider-typebox';
import { MAX_ALLOW_OUT } from '@wrenn/host-agent/network/egress-policy';
import type { ApiKeyInfo } from '../../auth/api-keys.js';
import type { AuditEvent } from '../../db/repositories/audit-events.js';
import type { Capsule } from '../../db/repositories/capsules.js';
import type { HostLoad } from '../../db/repositories/hosts.js';
import type { Template } from '../../db/repositories/templates.js';
import { CAPSULE_LIMITS } from '../../services/capsules.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const DateTime = Type.String({ format: 'date-time' });
const StringMap = (description: string) => Type.Record(Type.String(), Type.String(), { description });

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { description: 'Every error: a machine-readable code and a message saying what to do' },
);

export const CapsuleStateSchema = Type.Union([
  Type.Literal('starting'),
  Type.Literal('running'),
  Type.Literal('paused'),
  Type.Literal('hibernated'),
  Type.Literal('stopped'),
  Type.Literal('error'),
]);

export const CapsuleSchema = Type.Object({
  id: Type.String({ examples: ['cl-0a1b2c3d4e5f6g7h'] }),
  template: Type.String(),
  state: CapsuleStateSchema,
  runtime: Type.String(),
  vcpus: Type.Integer(),
  memory_mb: Type.Integer(),
  timeout_sec: Type.Integer({
    description: 'Seconds from the last ping/resume until timeout_action applies; 0 = never',
  }),
  timeout_action: Type.String(),
  host_id: Nullable(Type.String()),
  metadata: StringMap('Labels given at creation'),
  internet: Type.Boolean(),
  envd_access_token: Nullable(
    Type.String({ description: "Token for the capsule's envd (X-Access-Token), reached through the proxy" }),
  ),
  created_at: DateTime,
  updated_at: DateTime,
  expires_at: Nullable(DateTime),
  stopped_at: Nullable(DateTime),
  error: Nullable(Type.String()),
});
export type CapsuleJson = Static<typeof CapsuleSchema>;

export function capsuleJson(c: Capsule): CapsuleJson {
  return {
    id: c.id,
    template: c.template,
    state: c.state,
    runtime: c.runtime,
    vcpus: c.vcpus,
    memory_mb: c.memoryMb,
    timeout_sec: c.timeoutSec,
    timeout_action: c.timeoutAction,
    host_id: c.hostId,
    metadata: c.metadata,
    internet: c.internet,
    envd_access_token: c.envdAccessToken,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
    expires_at: c.expiresAt?.toISOString() ?? null,
    stopped_at: c.stoppedAt?.toISOString() ?? null,
    error: c.error,
  };
}

export const CreateCapsuleBody = Type.Object(
  {
    template: Type.Optional(
      Type.String({ minLength: 1, maxLength: 63, description: "Template name (default 'minimal')" }),
    ),
    vcpus: Type.Optional(Type.Integer({ minimum: CAPSULE_LIMITS.minVcpus, maximum: CAPSULE_LIMITS.maxVcpus })),
    memory_mb: Type.Optional(
      Type.Integer({ minimum: CAPSULE_LIMITS.minMemoryMb, maximum: CAPSULE_LIMITS.maxMemoryMb }),
    ),
    timeout_sec: Type.Optional(
      Type.Integer({ minimum: 0, maximum: CAPSULE_LIMITS.maxTimeoutSec, description: '0 = never (default 300)' }),
    ),
    timeout_action: Type.Optional(Type.Union([Type.Literal('kill'), Type.Literal('pause'), Type.Literal('hibernate')])),
    env: Type.Optional(
      StringMap(
        `Environment variables of every process in the capsule (at most ${CAPSULE_LIMITS.maxEnvBytes} bytes as JSON)`,
      ),
    ),
    metadata: Type.Optional(StringMap('Labels to filter capsules by')),
    internet: Type.Optional(Type.Boolean({ description: 'Outbound internet access (default true)' })),
    network: Type.Optional(
      Type.Object(
        {
          allow_out: Type.Optional(
            Type.Array(Type.String({ maxLength: 18 }), {
              maxItems: MAX_ALLOW_OUT,
              description:
                'IPv4 CIDRs or addresses the capsule may reach even with internet off. Private, link-local and ' +
                "other non-global ranges are closed; naming one is refused (400) unless the host's " +
                'WRENN_EGRESS_OPENABLE_CIDRS covers it',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    runtime: Type.Optional(
      Type.String({
        description:
          'namespace, qemu or firecracker, offered by a host of this deployment (default: what the host offers)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateCapsuleBodyT = Static<typeof CreateCapsuleBody>;

export const CapsuleIdParams = Type.Object({ id: Type.String({ description: 'Capsule id (cl-...)' }) });

/** The largest pid Linux can hand out (PID_MAX_LIMIT on 64-bit); envd's pid fields are uint32. */
export const PID_MAX_LIMIT = 4_194_304;
export const ProcessParams = Type.Object({
  id: Type.String({ description: 'Capsule id (cl-...)' }),
  pid: Type.Integer({ minimum: 1, maximum: PID_MAX_LIMIT, description: 'Process id inside the capsule' }),
});

export const ListCapsulesQuery = Type.Object(
  {
    state: Type.Optional(
      Type.String({ description: 'One state or several separated by commas; default: all but stopped' }),
    ),
    template: Type.Optional(Type.String()),
    metadata: Type.Optional(
      Type.Array(Type.String(), { description: 'key:value (repeatable); metadata.<key>=value works too' }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: Type.String() },
);

export const CapsuleListSchema = Type.Object({
  capsules: Type.Array(CapsuleSchema),
  next_cursor: Nullable(Type.String()),
});

export const PauseBody = Type.Object(
  {
    mode: Type.Optional(
      Type.Union([Type.Literal('freeze'), Type.Literal('hibernate')], {
        description: 'freeze (default) keeps memory; hibernate keeps the disk only',
      }),
    ),
  },
  { additionalProperties: false },
);
export const ResumeBody = Type.Object(
  { timeout_sec: Type.Optional(Type.Integer({ minimum: 0, maximum: CAPSULE_LIMITS.maxTimeoutSec })) },
  { additionalProperties: false },
);
export const TimeoutBody = Type.Object(
  { timeout_sec: Type.Integer({ minimum: 0, maximum: CAPSULE_LIMITS.maxTimeoutSec }) },
  { additionalProperties: false },
);

export const ExecBody = Type.Object(
  {
    cmd: Type.String({ minLength: 1, description: 'Program to run; without args it is run by /bin/sh -c' }),
    args: Type.Optional(Type.Array(Type.String())),
    env: Type.Optional(StringMap(`Extra environment variables (at most ${CAPSULE_LIMITS.maxEnvBytes} bytes as JSON)`)),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    stdin_base64: Type.Optional(Type.String({ contentEncoding: 'base64' })),
    timeout_sec: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  },
  { additionalProperties: false },
);
export type ExecBodyT = Static<typeof ExecBody>;

export const ExecResultSchema = Type.Object({
  stdout: Type.String({ description: 'Output as UTF-8 (lossy when stdout_base64 is present)' }),
  stderr: Type.String(),
  exit_code: Type.Integer(),
  stdout_base64: Type.Optional(Type.String({ description: 'Exact bytes, present when stdout is not valid UTF-8' })),
  stderr_base64: Type.Optional(Type.String()),
  error: Type.Optional(Type.String({ description: 'Why the process ended abnormally (signal, timeout)' })),
});

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

export const EventSchema = Type.Object({
  id: Type.Integer(),
  kind: Type.String(),
  capsule_id: Nullable(Type.String()),
  data: Type.Record(Type.String(), Type.Unknown()),
  created_at: DateTime,
});
export const eventJson = (e: AuditEvent) => ({
  id: e.id,
  kind: e.kind,
  capsule_id: e.capsuleId,
  data: e.data,
  created_at: e.createdAt.toISOString(),
});
export const PageQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), cursor: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

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
export const PathQuery = Type.Object(
  { path: Type.String({ minLength: 1 }), user: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
export const ListFilesQuery = Type.Object(
  {
    path: Type.String({ minLength: 1 }),
    depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
    user: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export const MkdirBody = Type.Object(
  { path: Type.String({ minLength: 1 }), user: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

export const ProcessSchema = Type.Object({
  pid: Type.Integer(),
  tag: Type.String(),
  cmd: Type.String(),
  args: Type.Array(Type.String()),
  cwd: Type.String(),
});

export const TemplateSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String({ description: 'base (built-in), snapshot or dockerfile' }),
  builtin: Type.Boolean(),
  host_id: Nullable(Type.String()),
  parent: Nullable(Type.String()),
  vcpus: Type.Integer(),
  memory_mb: Type.Integer(),
  runtimes: Type.Array(Type.String()),
  size_bytes: Type.Integer(),
  created_at: DateTime,
});
export const templateJson = (t: Template) => ({
  id: t.id,
  name: t.name,
  kind: t.kind,
  builtin: t.teamId === null,
  host_id: t.hostId,
  parent: t.parent,
  vcpus: t.vcpus,
  memory_mb: t.memoryMb,
  runtimes: t.runtimes,
  size_bytes: t.sizeBytes,
  created_at: t.createdAt.toISOString(),
});
export const CreateSnapshotBody = Type.Object(
  {
    capsule_id: Type.String({ minLength: 1 }),
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      description: "a-z, 0-9, '.', '_', '-'; starts with a letter or digit",
    }),
  },
  { additionalProperties: false },
);
export const NameParams = Type.Object({ name: Type.String() });

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
});
export const hostJson = (l: HostLoad) => ({
  id: l.host.id,
  status: l.host.status,
  runtimes: l.host.runtimes,
  cpu_count: l.host.cpuCount,
  memory_mb: l.host.memoryMb,
  capsules: l.capsules,
  allocated_vcpus: l.vcpus,
  allocated_memory_mb: l.memoryMb,
  last_heartbeat_at: l.host.lastHeartbeatAt?.toISOString() ?? null,
});

export const ApiKeySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String(),
  created_at: DateTime,
  last_used_at: Nullable(DateTime),
  revoked_at: Nullable(DateTime),
});
export const apiKeyJson = (k: ApiKeyInfo) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  created_at: k.createdAt.toISOString(),
  last_used_at: k.lastUsedAt?.toISOString() ?? null,
  revoked_at: k.revokedAt?.toISOString() ?? null,
});
export const CreateApiKeyBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
export const IdParams = Type.Object({ id: Type.String() });

/** Standard error responses for the OpenAPI document. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
