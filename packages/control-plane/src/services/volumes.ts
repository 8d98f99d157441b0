// Volumes of a team: persistent named storage with a size limit, kept on one host (the least
// loaded online one when it is made), mounted into capsules of that host at create, and read and
// written without a capsule through the content API (which takes the volume's own token).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnauthenticatedError,
  UnavailableError,
  VOLUME_LIMITS,
  type VolumeContentOp,
  volumeMountsProblem,
  volumeNameProblem,
  volumeSizeProblem,
} from '@wrenn/protocol';
import type { VolumeContentResponse } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../context.js';
import { isUniqueViolation } from '../db/errors.js';
import { getHost, type Host } from '../db/repositories/hosts.js';
import {
  capsulesUsingVolume,
  deleteVolumeRow,
  getVolume,
  getVolumeById,
  getVolumeByName,
  insertVolume,
  listVolumes as listVolumeRows,
  type Volume,
} from '../db/repositories/volumes.js';
import { randomBase36 } from '../ids.js';
import { NoHostError, pickHost } from '../scheduler/least-loaded.js';

export type { Volume, VolumeMountRow } from '../db/repositories/volumes.js';
export { capsuleVolumeMounts, volumeMountsOfCapsules } from '../db/repositories/volumes.js';

const newVolumeId = (): string => `vol-${randomBase36(16)}`;
const newVolumeToken = (): string => `vtk_${randomBytes(24).toString('base64url')}`;

export interface CreateVolumeInput {
  name: string;
  sizeMb?: number;
}

async function volumeHost(ctx: ControlPlaneContext, v: Volume): Promise<Host> {
  const host = await getHost(ctx.database.db, v.hostId);
  if (!host) throw new UnavailableError(`volume ${v.name} is on host ${v.hostId}, which is not registered any more`);
  return host;
}

export async function createVolume(
  ctx: ControlPlaneContext,
  teamId: string,
  input: CreateVolumeInput,
): Promise<Volume> {
  const problem = volumeNameProblem(input.name) ?? volumeSizeProblem(input.sizeMb);
  if (problem) throw new InvalidArgumentError(problem);
  const db = ctx.database.db;
  if (await getVolumeByName(db, teamId, input.name))
    throw new AlreadyExistsError(`a volume named '${input.name}' already exists`);
  let host: Host;
  try {
    ({ host } = await pickHost(db, { vcpus: 0, memoryMb: 0 }));
  } catch (err) {
    if (err instanceof NoHostError) throw new UnavailableError('no host is online to keep the volume');
    throw err;
  }
  const v: Volume = {
    id: newVolumeId(),
    teamId,
    name: input.name,
    sizeMb: input.sizeMb ?? VOLUME_LIMITS.defaultSizeMb,
    hostId: host.id,
    token: newVolumeToken(),
    createdAt: new Date(),
  };
  try {
    await insertVolume(db, v);
  } catch (err) {
    if (isUniqueViolation(err)) throw new AlreadyExistsError(`a volume named '${input.name}' already exists`);
    throw err;
  }
  try {
    await ctx.agents.client(host).createVolume({ id: v.id, sizeMb: v.sizeMb });
  } catch (err) {
    await deleteVolumeRow(db, v.id);
    throw err;
  }
  return v;
}

export const listVolumes = (ctx: ControlPlaneContext, teamId: string): Promise<Volume[]> =>
  listVolumeRows(ctx.database.db, teamId);

/** The team's volume by id or, failing that, by name. */
export async function getTeamVolume(ctx: ControlPlaneContext, teamId: string, idOrName: string): Promise<Volume> {
  const db = ctx.database.db;
  const v = (await getVolume(db, teamId, idOrName)) ?? (await getVolumeByName(db, teamId, idOrName));
  if (!v) throw new NotFoundError(`volume ${idOrName} not found`);
  return v;
}

/** Deletes the volume and its files; refused (409) while a capsule that is not destroyed mounts it. */
export async function deleteVolume(ctx: ControlPlaneContext, teamId: string, idOrName: string): Promise<void> {
  const v = await getTeamVolume(ctx, teamId, idOrName);
  const users = await capsulesUsingVolume(ctx.database.db, v.id);
  if (users.length > 0)
    throw new FailedPreconditionError(
      `volume ${v.name} is mounted by ${users.map((u) => `${u.id} (${u.state})`).join(', ')}; destroy ${users.length > 1 ? 'them' : 'it'} first`,
    );
  await ctx.agents
    .client(await volumeHost(ctx, v))
    .deleteVolume({ id: v.id })
    .catch((err: unknown) => {
      // Already gone on the host (a failed create, a wiped data dir): the row goes anyway.
      if (!(err instanceof NotFoundError)) throw err;
    });
  await deleteVolumeRow(ctx.database.db, v.id);
}

/**
 * The volumes a create names, resolved for the team: each exists and all live on one host, which
 * the capsule must then be placed on.
 */
export async function resolveVolumeMounts(
  ctx: ControlPlaneContext,
  teamId: string,
  mounts: readonly { name: string; path: string }[] | undefined,
): Promise<{ hostId: string | null; mounts: { volumeId: string; path: string }[] }> {
  if (!mounts || mounts.length === 0) return { hostId: null, mounts: [] };
  const problem = volumeMountsProblem(mounts);
  if (problem) throw new InvalidArgumentError(problem);
  const out: { volumeId: string; path: string }[] = [];
  let hostId: string | null = null;
  for (const m of mounts) {
    const v = await getVolumeByName(ctx.database.db, teamId, m.name);
    if (!v) throw new NotFoundError(`volume '${m.name}' not found`);
    if (hostId && v.hostId !== hostId)
      throw new InvalidArgumentError(
        'the volumes asked for live on different hosts; one capsule can mount volumes of one host only',
      );
    hostId = v.hostId;
    out.push({ volumeId: v.id, path: m.path });
  }
  return { hostId, mounts: out };
}

/** The volume a content API request names, if `token` is its token (else 401; an unknown id is 404). */
export async function authorizeVolumeContent(
  ctx: ControlPlaneContext,
  volumeId: string,
  token: string | undefined,
): Promise<Volume> {
  if (!token)
    throw new UnauthenticatedError('missing volume token: send Authorization: Bearer <the token the volume API gave>');
  const v = await getVolumeById(ctx.database.db, volumeId);
  if (!v) throw new NotFoundError(`volume ${volumeId} not found`);
  const a = Buffer.from(token);
  const b = Buffer.from(v.token);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new UnauthenticatedError("the token is not this volume's");
  return v;
}

/** The contract's content operation (@wrenn/protocol). */
export type VolumeContentInput = VolumeContentOp;

/** One content operation on the volume's host (paths confined to the volume there). */
export async function volumeContent(
  ctx: ControlPlaneContext,
  v: Volume,
  input: VolumeContentInput,
): Promise<VolumeContentResponse> {
  return ctx.agents.client(await volumeHost(ctx, v)).volumeContent({
    volumeId: v.id,
    op: input.op,
    path: input.path,
    depth: input.depth ?? 0,
    force: input.force ?? false,
    ...(input.uid !== undefined ? { uid: input.uid } : {}),
    ...(input.gid !== undefined ? { gid: input.gid } : {}),
    ...(input.mode !== undefined ? { mode: input.mode } : {}),
    data: input.data ?? new Uint8Array(),
  });
}
