// The volume RPCs of hostagent.v1 (CreateVolume, DeleteVolume, VolumeContent) over the manager's
// volume store and the content operations.
import { create } from '@bufbuild/protobuf';
import { InvalidArgumentError, isVolumeContentOp, VOLUME_CONTENT_OPS, VOLUME_LIMITS } from '@wrenn/protocol';
import {
  type CreateVolumeRequest,
  type DeleteVolumeRequest,
  type VolumeContentRequest,
  type VolumeContentResponse,
  VolumeContentResponseSchema,
  VolumeEntrySchema,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { SandboxManager } from '../manager/manager.js';
import { volumeContent } from '../volumes/index.js';

export async function createVolume(m: SandboxManager, req: CreateVolumeRequest): Promise<Record<string, never>> {
  await m.volumes.create(req.id, req.sizeMb || VOLUME_LIMITS.defaultSizeMb);
  return {};
}

export async function deleteVolume(m: SandboxManager, req: DeleteVolumeRequest): Promise<Record<string, never>> {
  await m.deleteVolume(req.id);
  return {};
}

export async function volumeContentRpc(m: SandboxManager, req: VolumeContentRequest): Promise<VolumeContentResponse> {
  if (!req.volumeId) throw new InvalidArgumentError('volume_id is required');
  const op = req.op;
  if (!isVolumeContentOp(op))
    throw new InvalidArgumentError(`op '${op}' is not one of ${VOLUME_CONTENT_OPS.join(', ')}`);
  const dataDir = await m.volumes.mountedData(req.volumeId);
  const out = await volumeContent(dataDir, {
    op,
    path: req.path,
    depth: req.depth,
    force: req.force,
    ...(req.uid !== undefined ? { uid: req.uid } : {}),
    ...(req.gid !== undefined ? { gid: req.gid } : {}),
    ...(req.mode !== undefined ? { mode: req.mode } : {}),
    data: req.data,
  });
  return create(VolumeContentResponseSchema, {
    entries: out.entries.map((e) =>
      create(VolumeEntrySchema, {
        ...e,
        size: BigInt(e.size),
        atime: BigInt(Math.floor(e.atime)),
        mtime: BigInt(Math.floor(e.mtime)),
        ctime: BigInt(Math.floor(e.ctime)),
      }),
    ),
    data: out.data ?? new Uint8Array(),
  });
}
