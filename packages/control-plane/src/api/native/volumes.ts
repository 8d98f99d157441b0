// /v1/volumes: a team's volumes (create, list, get, delete; 409 while a capsule mounts one) and their
// files without a capsule (list, read, write, remove), over services/volumes.ts. A volume is named
// by its id or its name.
import { type FastifyPluginAsyncTypebox, Type } from '@fastify/type-provider-typebox';
import {
  CreateVolumeBody,
  type CreateVolumeBodyJson,
  VOLUME_LIMITS,
  type VolumeEntryJson,
  VolumeEntrySchema,
  type VolumeJson,
  VolumeSchema,
} from '@wrenn/protocol';
import type { VolumeEntry } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import {
  createVolume,
  deleteVolume,
  getTeamVolume,
  listVolumes,
  type Volume,
  type VolumeContentInput,
  volumeContent,
} from '../../services/volumes.js';
import { teamOf } from '../auth.js';
import { errors, IdParams } from './schemas.js';

const tags = ['volumes'];

const volumeJson = (v: Volume): VolumeJson => ({
  id: v.id,
  name: v.name,
  size_mb: v.sizeMb,
  host_id: v.hostId,
  token: v.token,
  created_at: v.createdAt.toISOString(),
});

/** The agent's word for an entry's kind, one of the contract's (anything else shows as 'unknown'). */
const entryType = (t: string): VolumeEntryJson['type'] =>
  t === 'file' || t === 'directory' || t === 'symlink' ? t : 'unknown';
const entryJson = (e: VolumeEntry): VolumeEntryJson => ({
  name: e.name,
  path: e.path,
  type: entryType(e.type),
  size: Number(e.size),
  mode: e.mode,
  uid: e.uid,
  gid: e.gid,
  modified_at: new Date(Number(e.mtime)).toISOString(),
  ...(e.target ? { symlink_target: e.target } : {}),
});
const PathQuery = Type.Object({ path: Type.String({ maxLength: 4096, description: "From the volume's root" }) });

export const volumeRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    const content = async (req: FastifyRequest, input: VolumeContentInput) =>
      volumeContent(ctx, await getTeamVolume(ctx, teamOf(req).id, (req.params as { id: string }).id), input);

    app.post(
      '/volumes',
      {
        schema: {
          tags,
          summary: 'Create a volume (persistent storage with a size limit, mounted into capsules at create)',
          body: CreateVolumeBody,
          response: { 201: VolumeSchema, ...errors(400, 401, 409, 503) },
        },
      },
      async (req, reply) => {
        const b = req.body as CreateVolumeBodyJson;
        const v = await createVolume(ctx, teamOf(req).id, {
          name: b.name,
          ...(b.size_mb !== undefined ? { sizeMb: b.size_mb } : {}),
        });
        return reply.status(201).send(volumeJson(v));
      },
    );
    app.get(
      '/volumes',
      {
        schema: {
          tags,
          summary: "The team's volumes",
          response: { 200: Type.Object({ volumes: Type.Array(VolumeSchema) }), ...errors(401) },
        },
      },
      async (req) => ({ volumes: (await listVolumes(ctx, teamOf(req).id)).map(volumeJson) }),
    );
    app.get(
      '/volumes/:id',
      {
        schema: {
          tags,
          summary: 'A volume, by id or name',
          params: IdParams,
          response: { 200: VolumeSchema, ...errors(401, 404) },
        },
      },
      async (req) => volumeJson(await getTeamVolume(ctx, teamOf(req).id, req.params.id)),
    );
    app.delete(
      '/volumes/:id',
      {
        schema: {
          tags,
          summary: 'Delete a volume and its files (409 while a capsule that is not destroyed mounts it)',
          params: IdParams,
          response: { 204: Type.Null(), ...errors(401, 404, 409) },
        },
      },
      async (req, reply) => {
        await deleteVolume(ctx, teamOf(req).id, req.params.id);
        return reply.status(204).send(null);
      },
    );
    app.get(
      '/volumes/:id/entries',
      {
        schema: {
          tags,
          summary: 'List a directory of a volume',
          params: IdParams,
          querystring: Type.Object({
            path: Type.Optional(Type.String({ maxLength: 4096 })),
            depth: Type.Optional(Type.Integer({ minimum: 1, maximum: VOLUME_LIMITS.maxListDepth })),
          }),
          response: { 200: Type.Object({ entries: Type.Array(VolumeEntrySchema) }), ...errors(400, 401, 404) },
        },
      },
      async (req) => {
        const q = req.query as { path?: string; depth?: number };
        const res = await content(req, { op: 'list', path: q.path ?? '/', ...(q.depth ? { depth: q.depth } : {}) });
        return { entries: res.entries.map(entryJson) };
      },
    );
    app.get(
      '/volumes/:id/files',
      { schema: { tags, summary: 'Read a file of a volume (raw bytes)', params: IdParams, querystring: PathQuery } },
      async (req, reply) => {
        const res = await content(req, { op: 'read', path: (req.query as { path: string }).path });
        return reply.type('application/octet-stream').send(Buffer.from(res.data));
      },
    );
    app.delete(
      '/volumes/:id/files',
      {
        schema: {
          tags,
          summary: 'Remove a file or directory of a volume',
          params: IdParams,
          querystring: PathQuery,
          response: { 204: Type.Null(), ...errors(400, 401, 404) },
        },
      },
      async (req, reply) => {
        await content(req, { op: 'remove', path: (req.query as { path: string }).path });
        return reply.status(204).send(null);
      },
    );
    // Uploads: the raw body, up to the contract's one-request limit; missing parents are made.
    await app.register(async (raw: FastifyInstance) => {
      raw.removeAllContentTypeParsers();
      raw.addContentTypeParser(
        '*',
        { parseAs: 'buffer', bodyLimit: VOLUME_LIMITS.maxContentWriteBytes },
        (_req, body, done) => done(null, body),
      );
      raw.put(
        '/volumes/:id/files',
        {
          bodyLimit: VOLUME_LIMITS.maxContentWriteBytes,
          schema: {
            tags,
            summary: 'Write a file of a volume (raw body; parent directories are made)',
            params: IdParams,
            querystring: PathQuery,
            response: { 200: VolumeEntrySchema, ...errors(400, 401, 404, 507) },
          },
        },
        async (req) => {
          const data = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const res = await content(req, {
            op: 'write',
            path: (req.query as { path: string }).path,
            force: true,
            data,
          });
          return entryJson(res.entries[0] as VolumeEntry);
        },
      );
    });
  };
