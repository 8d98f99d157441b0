// JSON shapes of the native API (snake_case) as TypeBox schemas, so requests are validated by
// Fastify and the OpenAPI document describes them, plus the converters from domain records. The
// capsule's own shapes are the contract's (@wrenn/protocol), re-exported here for the routes.
import { type Static, Type } from '@fastify/type-provider-typebox';
import {
  ApiKeySchema,
  CAPSULE_LIMITS,
  type CapsuleJson,
  CapsuleSchema,
  CapsuleStateSchema,
  type CapsuleVolumeMountsJson,
  CreateCapsuleBody,
  type CreateCapsuleBodyJson,
  EventSchema,
  FileEntrySchema,
  HostSchema,
  MetricsSchema,
  Nullable,
  ProcessSchema,
  StringMap,
  TemplateSchema,
  TimeoutSecSchema,
} from '@wrenn/protocol';
import type { ApiKeyInfo } from '../../auth/api-keys.js';
import type { AuditEvent } from '../../db/repositories/audit-events.js';
import type { Capsule } from '../../db/repositories/capsules.js';
import type { HostLoad } from '../../db/repositories/hosts.js';
import type { Template } from '../../db/repositories/templates.js';

export type { CapsuleJson };
export {
  ApiKeySchema,
  CapsuleSchema,
  CapsuleStateSchema,
  CreateCapsuleBody,
  EventSchema,
  FileEntrySchema,
  HostSchema,
  MetricsSchema,
  ProcessSchema,
  TemplateSchema,
};

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { description: 'Every error: a machine-readable code and a message saying what to do' },
);

/** A capsule row as JSON; `volumeMounts` comes from capsule_volumes (the caller loads it). */
export function capsuleJson(c: Capsule, volumeMounts: CapsuleVolumeMountsJson): CapsuleJson {
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
    auto_resume: c.autoResume,
    envd_access_token: c.envdAccessToken,
    traffic_access_token: c.trafficAccessToken,
    mask_request_host: c.maskRequestHost,
    ...c.plainFields,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
    expires_at: c.expiresAt?.toISOString() ?? null,
    stopped_at: c.stoppedAt?.toISOString() ?? null,
    error: c.error,
    volume_mounts: volumeMounts,
  };
}

export type CreateCapsuleBodyT = CreateCapsuleBodyJson;

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
  { timeout_sec: Type.Optional(TimeoutSecSchema) },
  { additionalProperties: false },
);
export const TimeoutBody = Type.Object({ timeout_sec: TimeoutSecSchema }, { additionalProperties: false });

export const ExecBody = Type.Object(
  {
    cmd: Type.String({ minLength: 1, description: 'Program to run; without args it is run by /bin/sh -c' }),
    args: Type.Optional(Type.Array(Type.String())),
    env: Type.Optional(StringMap(`Extra environment variables (at most ${CAPSULE_LIMITS.maxEnvBytes} bytes as JSON)`)),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    stdin_base64: Type.Optional(Type.String({ contentEncoding: 'base64' })),
    timeout_sec: Type.Optional(Type.Integer({ minimum: 0, maximum: CAPSULE_LIMITS.maxCommandTimeoutSec })),
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

/** A template as the API shows it, with the tags the team set on it (`tags.get(name)`, 'default' not listed). */
export const templateJson = (t: Template, tags: ReadonlyMap<string, readonly string[]>) => ({
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
  tags: [...(tags.get(t.name) ?? [])],
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

export const hostJson = (l: HostLoad) => ({
  id: l.host.id,
  // A drained host that answers shows as draining; one that does not, as unreachable.
  status: l.host.draining && l.host.status === 'online' ? 'draining' : l.host.status,
  runtimes: l.host.runtimes,
  cpu_count: l.host.cpuCount,
  memory_mb: l.host.memoryMb,
  capsules: l.capsules,
  allocated_vcpus: l.vcpus,
  allocated_memory_mb: l.memoryMb,
  last_heartbeat_at: l.host.lastHeartbeatAt?.toISOString() ?? null,
  draining: l.host.draining === true,
  warm_pools: (l.host.warmPools?.pools ?? []).map((p) => ({ template: p.template, ready: p.ready, target: p.target })),
  warm_pool_target: l.host.warmPoolTarget ?? null,
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
