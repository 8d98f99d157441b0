// /v1/snapshots, /v1/templates, /v1/hosts and /v1/api-keys.

import { type FastifyPluginAsyncTypebox, Type } from '@fastify/type-provider-typebox';
import { NotFoundError } from '@wrenn/protocol';
import { createApiKey, e2bKeyOf, listApiKeys, revokeApiKey } from '../../auth/api-keys.js';
import type { ControlPlaneContext } from '../../context.js';
import { listHostLoads } from '../../db/repositories/hosts.js';
import {
  createSnapshot,
  deleteSnapshot,
  deleteTemplateWithTags,
  listSnapshots,
  listTemplates,
} from '../../services/capsules.js';
import { tagsByTemplate } from '../../services/template-tags.js';
import { teamOf } from '../auth.js';

import {
  ApiKeySchema,
  apiKeyJson,
  CreateApiKeyBody,
  CreateSnapshotBody,
  errors,
  HostSchema,
  hostJson,
  IdParams,
  NameParams,
  TemplateSchema,
  templateJson,
} from './schemas.js';

export const resourceRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/snapshots',
      {
        schema: {
          tags: ['snapshots'],
          summary: 'Snapshot a running or paused capsule into a template',
          body: CreateSnapshotBody,
          response: { 201: TemplateSchema, ...errors(400, 401, 404, 409) },
        },
      },
      async (req, reply) => {
        const team = teamOf(req).id;
        const t = await createSnapshot(ctx, team, { capsuleId: req.body.capsule_id, name: req.body.name });
        return reply.status(201).send(templateJson(t, await tagsByTemplate(ctx, team)));
      },
    );

    app.get(
      '/snapshots',
      {
        schema: {
          tags: ['snapshots'],
          summary: "The team's snapshots",
          response: { 200: Type.Object({ snapshots: Type.Array(TemplateSchema) }), ...errors(401) },
        },
      },
      async (req) => {
        const team = teamOf(req).id;
        const [list, tags] = await Promise.all([listSnapshots(ctx, team), tagsByTemplate(ctx, team)]);
        return { snapshots: list.map((t) => templateJson(t, tags)) };
      },
    );

    app.delete(
      '/snapshots/:name',
      {
        schema: {
          tags: ['snapshots'],
          summary: 'Delete a snapshot (refused while capsules made from it exist)',
          params: NameParams,
          response: { 204: Type.Null(), ...errors(401, 404, 409) },
        },
      },
      async (req, reply) => {
        await deleteSnapshot(ctx, teamOf(req).id, req.params.name);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/templates',
      {
        schema: {
          tags: ['templates'],
          summary: 'Built-in templates and the team’s own, each with the tags the team set on it',
          response: { 200: Type.Object({ templates: Type.Array(TemplateSchema) }), ...errors(401) },
        },
      },
      async (req) => {
        const team = teamOf(req).id;
        const [list, tags] = await Promise.all([listTemplates(ctx, team), tagsByTemplate(ctx, team)]);
        return { templates: list.map((t) => templateJson(t, tags)) };
      },
    );

    app.delete(
      '/templates/:name',
      {
        schema: {
          tags: ['templates'],
          summary: 'Delete a team template (built-ins cannot be deleted; refused while capsules use it)',
          params: NameParams,
          response: { 204: Type.Null(), ...errors(401, 404, 409) },
        },
      },
      async (req, reply) => {
        await deleteTemplateWithTags(ctx, teamOf(req).id, req.params.name);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/hosts',
      {
        schema: {
          tags: ['hosts'],
          summary: 'Sandbox hosts and their capacity',
          response: { 200: Type.Object({ hosts: Type.Array(HostSchema) }), ...errors(401) },
        },
      },
      async () => {
        const loads = await Promise.all(
          (['online', 'draining', 'unreachable'] as const).map((status) => listHostLoads(ctx.database.db, { status })),
        );
        return { hosts: loads.flat().map(hostJson) };
      },
    );

    app.get(
      '/api-keys',
      {
        schema: {
          tags: ['api-keys'],
          summary: "The team's API keys (never the keys themselves)",
          response: { 200: Type.Object({ api_keys: Type.Array(ApiKeySchema) }), ...errors(401) },
        },
      },
      async (req) => ({
        api_keys: (await listApiKeys(ctx.database.db, teamOf(req).id)).map(apiKeyJson),
      }),
    );

    app.post(
      '/api-keys',
      {
        schema: {
          tags: ['api-keys'],
          summary: 'Create an API key (the key is shown only in this response)',
          description:
            "`e2b_key` is the same key in the form the e2b SDKs' own key check accepts (E2B_API_KEY); every route takes either form.",
          body: CreateApiKeyBody,
          response: {
            201: Type.Object({ ...ApiKeySchema.properties, key: Type.String(), e2b_key: Type.String() }),
            ...errors(400, 401),
          },
        },
      },
      async (req, reply) => {
        const { key, info } = await createApiKey(ctx.database.db, { teamId: teamOf(req).id, name: req.body.name });
        return reply.status(201).send({ ...apiKeyJson(info), key, e2b_key: e2bKeyOf(key) });
      },
    );

    app.delete(
      '/api-keys/:id',
      {
        schema: {
          tags: ['api-keys'],
          summary: 'Revoke an API key',
          params: IdParams,
          response: { 204: Type.Null(), ...errors(401, 404) },
        },
      },
      async (req, reply) => {
        const info = await revokeApiKey(ctx.database.db, req.params.id, teamOf(req).id);
        if (!info) throw new NotFoundError(`API key ${req.params.id} not found`);
        return reply.status(204).send(null);
      },
    );
  };
