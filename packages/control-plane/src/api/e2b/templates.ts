// E2B template and snapshot routes. Wrenn snapshot templates are E2B snapshots: made from a
// sandbox, listed under /snapshots, deleted with DELETE /templates/{id}, and used by name in
// Sandbox.create().

import { Type } from '@sinclair/typebox';
import { InvalidArgumentError, NotFoundError } from '@wrenn/protocol';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { listAuditEvents } from '../../db/repositories/audit-events.js';
import { randomBase36 } from '../../ids.js';
import {
  createSnapshot,
  deleteTemplateWithTags,
  getCapsule,
  listSnapshots,
  listTemplates,
  resolveTemplate,
} from '../../services/capsules.js';
import { parseTemplateRef } from '../../services/template-refs.js';
import { isKeptBuildName, isLayerName } from '../../templates/layer-names.js';
import { e2bTeam } from './auth.js';
import { toE2bTemplate } from './mapping.js';
import {
  errorResponses,
  SandboxIdParams,
  SnapshotBody,
  SnapshotInfo,
  Template,
  TemplateAliasResponse,
} from './schemas.js';

const tags = ['e2b'];

export function templateRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.get(
    '/templates',
    {
      schema: {
        tags,
        summary: 'List templates',
        querystring: Type.Object({ teamID: Type.Optional(Type.String()) }),
        response: { 200: Type.Array(Template), ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      return (await listTemplates(ctx, team.id)).map(toE2bTemplate);
    },
  );

  app.get(
    '/templates/aliases/:alias',
    {
      schema: {
        tags,
        summary: "Check a template alias: the team's own template or a built-in of that name",
        description:
          "Wrenn's template names are per team, so another team's template of that name is not found here (E2B's aliases are global and answer 403 for it).",
        params: Type.Object({ alias: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 200: TemplateAliasResponse, ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const alias = (req.params as { alias: string }).alias;
      // Build cache layers and kept tagged builds are internal: never found by name.
      if (isLayerName(alias) || isKeptBuildName(alias)) throw new NotFoundError(`template '${alias}' not found`);
      const t = await resolveTemplate(ctx, team.id, alias);
      return { templateID: toE2bTemplate(t).templateID, public: t.teamId === null };
    },
  );

  app.delete(
    '/templates/:templateID',
    {
      schema: {
        tags,
        summary: 'Delete a template or snapshot',
        params: Type.Object({ templateID: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      // E2B ids may carry a tag (name:tag): the template goes with all its tags.
      const given = (req.params as { templateID: string }).templateID;
      const name = given.includes(':') ? parseTemplateRef(given).name : given;
      await deleteTemplateWithTags(ctx, team.id, name);
      return reply.status(204).send();
    },
  );

  app.post(
    '/sandboxes/:sandboxID/snapshots',
    {
      schema: {
        tags,
        summary: 'Snapshot a sandbox into a template',
        params: SandboxIdParams,
        body: Type.Optional(SnapshotBody),
        response: { 201: SnapshotInfo, ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      const name = (req.body as { name?: string } | undefined)?.name ?? `snapshot-${randomBase36(10)}`;
      const t = await createSnapshot(ctx, team.id, { capsuleId: id, name });
      return reply.status(201).send({ snapshotID: t.name, names: [t.name] });
    },
  );

  app.get(
    '/snapshots',
    {
      schema: {
        tags,
        summary: 'List snapshots',
        querystring: Type.Object({
          sandboxID: Type.Optional(Type.String({ maxLength: 128 })),
          name: Type.Optional(Type.String({ maxLength: 128 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
          nextToken: Type.Optional(Type.String({ maxLength: 32 })),
        }),
        response: { 200: Type.Array(SnapshotInfo), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const q = req.query as { sandboxID?: string; name?: string; limit?: number; nextToken?: string };
      let snaps = await listSnapshots(ctx, team.id);
      const name = q.name;
      if (name) snaps = snaps.filter((t) => t.name === name.replace(/:default$/, '') || t.id === name);
      if (q.sandboxID) {
        // Which snapshots came from the sandbox is in its audit log.
        await getCapsule(ctx, team.id, q.sandboxID);
        const events = await listAuditEvents(ctx.database.db, {
          capsuleId: q.sandboxID,
          teamId: team.id,
          kind: 'snapshot.created',
          limit: 1000,
        });
        const ids = new Set(events.items.map((e) => String(e.data.template_id)));
        snaps = snaps.filter((t) => ids.has(t.id));
      }
      let offset = 0;
      if (q.nextToken) {
        if (!/^o\d+$/.test(q.nextToken))
          throw new InvalidArgumentError(
            'nextToken is not valid: pass back the X-Next-Token of the previous page unchanged',
          );
        offset = Number(q.nextToken.slice(1));
      }
      const limit = q.limit ?? 100;
      if (offset + limit < snaps.length) void reply.header('x-next-token', `o${offset + limit}`);
      return snaps.slice(offset, offset + limit).map((t) => ({ snapshotID: t.name, names: [t.name] }));
    },
  );
}
