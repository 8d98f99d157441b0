// The native API's capsule JSON (snake_case) as TypeBox schemas: Fastify validates requests with
// them and writes the OpenAPI document from them, and the SDK and dashboard take their types from
// them (type-only imports, so browser bundles carry none of this).
import { type Static, type TLiteral, type TUnion, Type } from 'typebox';
import type { Camelized } from './camel.js';
import { FORK_DEFAULTS, FORK_LIMITS } from './fork.js';
import { IMAGE_REFERENCE_MAX_LENGTH, REGISTRY_CREDENTIAL_MAX_LENGTH } from './images.js';
import { DateTime, Nullable, StringMap } from './json.js';
import { CAPSULE_DEFAULTS, CAPSULE_LIMITS } from './limits.js';
import { CreateNetworkSchema } from './network-schemas.js';
import { CAPSULE_PLAIN_FIELDS, type CapsulePlainFieldsJson } from './plain-fields.js';
import { CAPSULE_STATES, RUNTIME_NAMES, TIMEOUT_ACTIONS } from './states.js';
import { CapsuleVolumeMountsSchema, VolumeMountsSchema } from './volume-schemas.js';

/** One of a word list, typed as the union of its words. */
type LiteralsOf<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K]> };
function OneOf<T extends readonly string[]>(words: T): TUnion<LiteralsOf<T>> {
  return Type.Union(words.map((w) => Type.Literal(w))) as unknown as TUnion<LiteralsOf<T>>;
}

export const CapsuleStateSchema = OneOf(CAPSULE_STATES);
export const TimeoutActionSchema = OneOf(TIMEOUT_ACTIONS);

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
  auto_resume: Type.Boolean({ description: 'A paused capsule resumes on its next request through the sandbox proxy' }),
  envd_access_token: Nullable(
    Type.String({ description: "Token for the capsule's envd (X-Access-Token), reached through the proxy" }),
  ),
  traffic_access_token: Nullable(
    Type.String({
      description: 'With network.allow_public_traffic false: send it as e2b-traffic-access-token to reach its ports',
    }),
  ),
  mask_request_host: Nullable(Type.String({ description: "The Host header the capsule's servers see" })),
  created_at: DateTime,
  updated_at: DateTime,
  expires_at: Nullable(DateTime),
  stopped_at: Nullable(DateTime),
  error: Nullable(Type.String()),
  volume_mounts: CapsuleVolumeMountsSchema,
  ...CAPSULE_PLAIN_FIELDS,
});
export type CapsuleJson = Static<typeof CapsuleSchema>;

/**
 * A capsule's fields as code holds them (the control plane's row, the SDK's CapsuleInfo): the
 * JSON's in camelCase with Dates, the plain fields together in `plainFields`; the id and the volume
 * mounts each holder names or loads its own way.
 */
export type CapsuleFields = Camelized<
  Omit<CapsuleJson, 'id' | 'volume_mounts' | keyof CapsulePlainFieldsJson>,
  'created_at' | 'updated_at' | 'expires_at' | 'stopped_at'
> & { plainFields: CapsulePlainFieldsJson };

export const RegistryCredentialsSchema = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: REGISTRY_CREDENTIAL_MAX_LENGTH }),
    password: Type.String({
      minLength: 1,
      maxLength: REGISTRY_CREDENTIAL_MAX_LENGTH,
      description: 'Password or token',
    }),
  },
  {
    additionalProperties: false,
    description: "Credentials for the image's registry (default: the host's WRENN_REGISTRY_AUTH_FILE, else anonymous)",
  },
);

const ImageReferenceSchema = Type.String({
  minLength: 1,
  maxLength: IMAGE_REFERENCE_MAX_LENGTH,
  description:
    'A container image to start from instead of a template (registry/repository[:tag][@sha256:...]; Docker Hub ' +
    'when no registry is named). Pulled on the host (layers cached), its ENV, WORKDIR and USER applied ' +
    '(its ENTRYPOINT/CMD are kept as metadata, not run: a template built FROM it with a CMD sets the start command)',
});

/** POST /v1/images/pull: the pull a capsule create with `image` would do, its progress streamed. */
export const PullImageBody = Type.Object(
  { image: ImageReferenceSchema, registry_credentials: Type.Optional(RegistryCredentialsSchema) },
  { additionalProperties: false },
);
export type PullImageBodyJson = Static<typeof PullImageBody>;

export const CreateCapsuleBody = Type.Object(
  {
    template: Type.Optional(
      Type.String({
        minLength: 1,
        // A name (1-63) and optionally ':' and a tag (1-128).
        maxLength: 192,
        description: `Template name, or name:tag for a tagged build (default '${CAPSULE_DEFAULTS.template}')`,
      }),
    ),
    image: Type.Optional(ImageReferenceSchema),
    registry_credentials: Type.Optional(RegistryCredentialsSchema),
    vcpus: Type.Optional(
      Type.Integer({
        minimum: CAPSULE_LIMITS.minVcpus,
        maximum: CAPSULE_LIMITS.maxVcpus,
        description: `Default ${CAPSULE_DEFAULTS.vcpus}`,
      }),
    ),
    memory_mb: Type.Optional(
      Type.Integer({
        minimum: CAPSULE_LIMITS.minMemoryMb,
        maximum: CAPSULE_LIMITS.maxMemoryMb,
        description: `Default ${CAPSULE_DEFAULTS.memoryMb}`,
      }),
    ),
    timeout_sec: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: CAPSULE_LIMITS.maxTimeoutSec,
        description: `0 = never (default ${CAPSULE_DEFAULTS.timeoutSec})`,
      }),
    ),
    timeout_action: Type.Optional(TimeoutActionSchema),
    env: Type.Optional(
      StringMap(
        `Environment variables of every process in the capsule (at most ${CAPSULE_LIMITS.maxEnvBytes} bytes as JSON)`,
      ),
    ),
    metadata: Type.Optional(StringMap('Labels to filter capsules by')),
    internet: Type.Optional(
      Type.Boolean({ description: `Outbound internet access (default ${CAPSULE_DEFAULTS.internet})` }),
    ),
    auto_resume: Type.Optional(
      Type.Boolean({
        description:
          'While paused, resume on the next request through the sandbox proxy, which waits for it (default false)',
      }),
    ),
    network: Type.Optional(CreateNetworkSchema),
    runtime: Type.Optional(
      Type.String({
        description: `${RUNTIME_NAMES.join(', ')}, offered by a host of this deployment (default: what the host offers)`,
      }),
    ),
    default_user: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: CAPSULE_LIMITS.maxUserNameLength,
        description:
          "User that commands and file operations run as when they name none: a user of the template's /etc/passwd " +
          "(default: the template's USER, else 'user')",
      }),
    ),
    volume_mounts: Type.Optional(VolumeMountsSchema),
    ...CAPSULE_PLAIN_FIELDS,
  },
  { additionalProperties: false },
);
export type CreateCapsuleBodyJson = Static<typeof CreateCapsuleBody>;

/** Seconds until the timeout applies again (resume, set timeout). */
export const TimeoutSecSchema = Type.Integer({ minimum: 0, maximum: CAPSULE_LIMITS.maxTimeoutSec });

export const ForkCapsuleBody = Type.Object(
  {
    count: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: FORK_LIMITS.maxCount,
        description: `Capsules to make from one copy of the source (default ${FORK_DEFAULTS.count})`,
      }),
    ),
    timeout_sec: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: CAPSULE_LIMITS.maxTimeoutSec,
        description: "Each fork's timeout; 0 = never (default: the source's)",
      }),
    ),
  },
  { additionalProperties: false },
);
export type ForkCapsuleBodyJson = Static<typeof ForkCapsuleBody>;

export const ForkCapsuleResult = Type.Object({
  source_id: Type.String(),
  processes_restarted: Type.Boolean({
    description:
      "true on the namespace runtime: forks get a copy of the source's files and start fresh processes; " +
      "false on the VM runtimes, whose forks restore the source's memory and processes",
  }),
  forks: Type.Array(
    Type.Object({
      capsule: Type.Optional(CapsuleSchema),
      error: Type.Optional(
        Type.Object({
          status: Type.Integer({ description: 'The HTTP status this error has elsewhere in the API' }),
          code: Type.String(),
          message: Type.String(),
        }),
      ),
    }),
    { description: 'One entry per requested fork: the capsule, or why that fork failed to start' },
  ),
});
export type ForkCapsuleResultJson = Static<typeof ForkCapsuleResult>;
