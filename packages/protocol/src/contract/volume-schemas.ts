// The native API's volume JSON (snake_case) as TypeBox schemas: /v1/volumes and a capsule
// create's volume_mounts. Bounds come from the volume contract (volumes.ts).
import { type Static, Type } from 'typebox';
import type { Camelized } from './camel.js';
import { DateTime } from './json.js';
import { VOLUME_LIMITS } from './volumes.js';

export const VolumeSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  size_mb: Type.Integer(),
  host_id: Type.String(),
  /** Bearer token of the E2B-compatible volume content API (/volumecontent/{id}/...). */
  token: Type.String({ description: "Bearer token of the volume content API (E2B's /volumecontent routes)" }),
  created_at: DateTime,
});
export type VolumeJson = Static<typeof VolumeSchema>;

export const CreateVolumeBody = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: VOLUME_LIMITS.maxNameLength,
      description: "Unique in the team: letters, digits, '-', '_' and '.', starting with a letter or digit",
    }),
    size_mb: Type.Optional(
      Type.Integer({
        minimum: VOLUME_LIMITS.minSizeMb,
        maximum: VOLUME_LIMITS.maxSizeMb,
        description: `Size limit in MiB (default ${VOLUME_LIMITS.defaultSizeMb}); the host reserves none of it up front`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateVolumeBodyJson = Static<typeof CreateVolumeBody>;

export const VolumeMountsSchema = Type.Array(
  Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: VOLUME_LIMITS.maxNameLength, description: 'A volume of the team' }),
      path: Type.String({
        minLength: 2,
        maxLength: VOLUME_LIMITS.maxMountPathLength,
        description: 'Absolute, normalised path inside the capsule (not under /proc, /sys, /dev, /etc or /opt/wrenn)',
      }),
    },
    { additionalProperties: false },
  ),
  {
    maxItems: VOLUME_LIMITS.maxMountsPerCapsule,
    description:
      'Volumes mounted read-write at create: namespace capsules may share one; a qemu capsule holds its volumes alone',
  },
);

/** A capsule's mounted volumes as capsule JSON shows them (GET/list/create of /v1/capsules). */
export const CapsuleVolumeMountsSchema = Type.Array(
  Type.Object({ name: Type.String({ description: 'Volume name' }), path: Type.String({ description: 'Mount path' }) }),
  { description: 'Volumes mounted in the capsule, by name and path' },
);
export type CapsuleVolumeMountsJson = Static<typeof CapsuleVolumeMountsSchema>;

/** One file or directory of a volume, as the volume content routes of the native API list it. */
export const VolumeEntrySchema = Type.Object({
  name: Type.String(),
  path: Type.String({ description: "From the volume's root" }),
  type: Type.Union([Type.Literal('file'), Type.Literal('directory'), Type.Literal('symlink'), Type.Literal('unknown')]),
  size: Type.Integer(),
  mode: Type.Integer(),
  uid: Type.Integer({ description: 'As capsules see it (0 = root inside)' }),
  gid: Type.Integer(),
  modified_at: DateTime,
  symlink_target: Type.Optional(Type.String()),
});
export type VolumeEntryJson = Static<typeof VolumeEntrySchema>;
/** A volume entry as code holds it (the SDK's VolumeEntry): camelCase, its time a Date. */
export type VolumeEntryFields = Camelized<VolumeEntryJson, 'modified_at'>;
