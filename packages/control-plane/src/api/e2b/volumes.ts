// E2B's volume routes: /volumes (create, list) and /volumes/{volumeID} (get, delete), as the e2b
// SDK's Volume class calls them, over services/volumes.ts. A volume is looked up by id, or by its
// name (the SDK's sandbox create names volumes).
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { createVolume, deleteVolume, getTeamVolume, listVolumes, type Volume } from '../../services/volumes.js';
import { e2bTeam } from './auth.js';
import { errorResponses } from './schemas.js';

const tags = ['e2b'];
const VolumeJson = Type.Object({ volumeID: Type.String(), name: Type.String() });
const VolumeAndToken = Type.Object({ volumeID: Type.String(), name: Type.String(), token: Type.String() });
const VolumeIdParams = Type.Object({ volumeID: Type.String({ minLength: 1, maxLength: 128 }) });

const withToken = (v: Volume) => ({ volumeID: v.id, name: v.name, token: v.token });

export function volumeRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.get(
    '/volumes',
    { schema: { tags, summary: 'List team volumes', response: { 200: Type.Array(VolumeJson), ...errorResponses } } },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      return (await listVolumes(ctx, team.id)).map((v) => ({ volumeID: v.id, name: v.name }));
    },
  );
  app.post(
    '/volumes',
    {
      schema: {
        tags,
        summary: 'Create a team volume',
        // The size is Wrenn's addition (E2B's API has none): MiB, default the contract's.
        body: Type.Object({ name: Type.String(), sizeMB: Type.Optional(Type.Integer()) }),
        response: { 201: VolumeAndToken, ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const body = req.body as { name: string; sizeMB?: number };
      const v = await createVolume(ctx, team.id, {
        name: body.name,
        ...(body.sizeMB !== undefined ? { sizeMb: body.sizeMB } : {}),
      });
      return reply.status(201).send(withToken(v));
    },
  );
  app.get(
    '/volumes/:volumeID',
    {
      schema: {
        tags,
        summary: 'Get a team volume',
        params: VolumeIdParams,
        response: { 200: VolumeAndToken, ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      return withToken(await getTeamVolume(ctx, team.id, (req.params as { volumeID: string }).volumeID));
    },
  );
  app.delete(
    '/volumes/:volumeID',
    { schema: { tags, summary: 'Delete a team volume (409 while a sandbox mounts it)', params: VolumeIdParams } },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      await deleteVolume(ctx, team.id, (req.params as { volumeID: string }).volumeID);
      return reply.status(204).send();
    },
  );
}
