// Request and response schemas of the E2B-compatible API, after E2B's public OpenAPI spec
// (field names and required fields as the e2b SDK reads them).
import { type Static, Type } from '@sinclair/typebox';
import { CAPSULE_DEFAULTS, CAPSULE_LIMITS } from '@wrenn/protocol';
import { UNIX_SECONDS_MAX } from './metrics-range.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const E2bError = Type.Object({ code: Type.Integer(), message: Type.String() });
export const errorResponses = {
  400: E2bError,
  401: E2bError,
  404: E2bError,
  409: E2bError,
  500: E2bError,
  503: E2bError,
};

export const SandboxIdParams = Type.Object({ sandboxID: Type.String({ minLength: 1, maxLength: 128 }) });
export type SandboxIdParams = Static<typeof SandboxIdParams>;

const StringMap = Type.Record(Type.String(), Type.String());

export const NewSandbox = Type.Object({
  templateID: Type.String({ minLength: 1, maxLength: 128 }),
  timeout: Type.Optional(
    Type.Integer({ minimum: 0, description: `Seconds to live (default ${CAPSULE_DEFAULTS.timeoutSec})` }),
  ),
  autoPause: Type.Optional(Type.Boolean({ description: 'Pause instead of kill at the timeout' })),
  autoPauseMemory: Type.Optional(
    Type.Boolean({ description: 'false: the timeout pause keeps only the disk (hibernate)' }),
  ),
  autoResume: Type.Optional(Type.Object({ enabled: Type.Boolean() })),
  secure: Type.Optional(Type.Boolean()),
  allow_internet_access: Type.Optional(Type.Boolean()),
  network: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  metadata: Type.Optional(StringMap),
  envVars: Type.Optional(
    Type.Record(Type.String(), Type.String(), { description: `At most ${CAPSULE_LIMITS.maxEnvBytes} bytes as JSON` }),
  ),
  mcp: Type.Optional(Type.Unknown()),
  iam: Type.Optional(Type.Unknown()),
  volumeMounts: Type.Optional(Type.Array(Type.Object({ name: Type.String(), path: Type.String() }))),
});
export type NewSandbox = Static<typeof NewSandbox>;

export const Sandbox = Type.Object({
  templateID: Type.String(),
  sandboxID: Type.String(),
  alias: Type.Optional(Type.String()),
  clientID: Type.String(),
  envdVersion: Type.String(),
  envdAccessToken: Type.Optional(Type.String()),
  trafficAccessToken: Nullable(Type.String()),
  domain: Nullable(Type.String()),
});
export type Sandbox = Static<typeof Sandbox>;

export const SandboxState = Type.Union([Type.Literal('running'), Type.Literal('paused')]);

const listedFields = {
  templateID: Type.String(),
  alias: Type.Optional(Type.String()),
  sandboxID: Type.String(),
  clientID: Type.String(),
  startedAt: Type.String({ format: 'date-time' }),
  endAt: Type.String({ format: 'date-time' }),
  cpuCount: Type.Integer(),
  memoryMB: Type.Integer(),
  diskSizeMB: Type.Integer(),
  metadata: StringMap,
  state: SandboxState,
  envdVersion: Type.String(),
  volumeMounts: Type.Array(Type.Object({ name: Type.String(), path: Type.String() })),
};
export const ListedSandbox = Type.Object(listedFields);
export type ListedSandbox = Static<typeof ListedSandbox>;

export const SandboxDetail = Type.Object({
  ...listedFields,
  envdAccessToken: Type.Optional(Type.String()),
  allowInternetAccess: Type.Union([Type.Boolean(), Type.Null()]),
  domain: Nullable(Type.String()),
  lifecycle: Type.Object({
    autoResume: Type.Boolean(),
    onTimeout: Type.Union([Type.Literal('kill'), Type.Literal('pause')]),
  }),
  network: Type.Optional(
    Type.Object(
      { allowPublicTraffic: Type.Optional(Type.Boolean()), maskRequestHost: Type.Optional(Type.String()) },
      { additionalProperties: true },
    ),
  ),
});
export type SandboxDetail = Static<typeof SandboxDetail>;

export const SandboxMetric = Type.Object({
  timestamp: Type.String({ format: 'date-time' }),
  timestampUnix: Type.Integer(),
  cpuCount: Type.Integer(),
  cpuUsedPct: Type.Number(),
  memUsed: Type.Integer(),
  memTotal: Type.Integer(),
  memCache: Type.Integer(),
  diskUsed: Type.Integer(),
  diskTotal: Type.Integer(),
});
export type SandboxMetric = Static<typeof SandboxMetric>;

/** start/end of the metrics routes: unix seconds. */
export const MetricsRangeQuery = Type.Object({
  start: Type.Optional(Type.Integer({ minimum: 0, maximum: UNIX_SECONDS_MAX, description: 'unix seconds' })),
  end: Type.Optional(Type.Integer({ minimum: 0, maximum: UNIX_SECONDS_MAX, description: 'unix seconds' })),
});
export type MetricsRangeQuery = Static<typeof MetricsRangeQuery>;

export const TimeoutBody = Type.Object({ timeout: Type.Integer({ minimum: 0 }) });
export const ConnectBody = Type.Object({
  timeout: Type.Optional(Type.Integer({ minimum: 0 })),
  memory: Type.Optional(Type.Boolean()),
});
export const ResumeBody = Type.Object({
  timeout: Type.Optional(Type.Integer({ minimum: 0 })),
  autoPause: Type.Optional(Type.Boolean()),
});
export const RefreshBody = Type.Object({ duration: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })) });
export const PauseBody = Type.Object({ memory: Type.Optional(Type.Boolean()) });
export const SnapshotBody = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })) });
export const SnapshotInfo = Type.Object({ snapshotID: Type.String(), names: Type.Array(Type.String()) });

export const ListQuery = Type.Object({
  metadata: Type.Optional(Type.String({ maxLength: 8192 })),
  state: Type.Optional(
    Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 16 }), { maxItems: 4 })], {
      description: 'running, paused: comma-separated (as the SDK sends it) or repeated',
    }),
  ),
  order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
  startedAfter: Type.Optional(Type.String({ format: 'date-time' })),
  template: Type.Optional(Type.String({ maxLength: 128 })),
  nextToken: Type.Optional(Type.String({ maxLength: 1024 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
});
export type ListQuery = Static<typeof ListQuery>;

export const SandboxLogs = Type.Object({
  logs: Type.Array(Type.Object({ timestamp: Type.String({ format: 'date-time' }), line: Type.String() })),
  logEntries: Type.Array(
    Type.Object({
      timestamp: Type.String({ format: 'date-time' }),
      level: Type.String(),
      message: Type.String(),
      fields: StringMap,
    }),
  ),
});

export const TemplateAliasResponse = Type.Object({ templateID: Type.String(), public: Type.Boolean() });

export const Template = Type.Object({
  templateID: Type.String(),
  buildID: Type.String(),
  cpuCount: Type.Integer(),
  memoryMB: Type.Integer(),
  diskSizeMB: Type.Integer(),
  public: Type.Boolean(),
  aliases: Type.Array(Type.String()),
  names: Type.Array(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Null(),
  lastSpawnedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  spawnCount: Type.Integer(),
  buildCount: Type.Integer(),
  envdVersion: Type.String(),
  buildStatus: Type.String(),
});
