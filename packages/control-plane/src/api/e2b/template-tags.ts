// E2B's template tags API: POST /templates/tags points more tags at the build 'name:tag' (or the
// latest build) names, DELETE /templates/tags removes tags, GET /templates/{id}/tags lists them
// ('default' is always the latest finished build and cannot be moved or removed).
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { assignTags, listTags, removeTags } from '../../services/template-tags.js';
import { e2bTeam } from './auth.js';
import { errorResponses } from './schemas.js';

const tags = ['e2b'];
const TagList = Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 20 });

export function templateTagRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.post(
    '/templates/tags',
    {
      schema: {
        tags,
        summary: "Point tags at the build 'name:tag' (or the name's latest build) names",
        body: Type.Object({ target: Type.String({ minLength: 1, maxLength: 256 }), tags: TagList }),
        response: { 201: Type.Object({ buildID: Type.String(), tags: Type.Array(Type.String()) }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const body = req.body as { target: string; tags: string[] };
      const { buildId, tags: assigned } = await assignTags(ctx, team.id, body.target, body.tags);
      return reply.status(201).send({ buildID: buildId, tags: assigned });
    },
  );

  app.delete(
    '/templates/tags',
    {
      schema: {
        tags,
        summary: 'Remove tags from a template',
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }), tags: TagList }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const body = req.body as { name: string; tags: string[] };
      await removeTags(ctx, team.id, body.name, body.tags);
      return reply.status(204).send();
    },
  );

  app.get(
    '/templates/:templateID/tags',
    {
      schema: {
        tags,
        summary: "A template's tags and the builds they point at",
        params: Type.Object({ templateID: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: {
          200: Type.Array(Type.Object({ tag: Type.String(), buildID: Type.String(), createdAt: Type.String() })),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const listed = await listTags(ctx, team.id, (req.params as { templateID: string }).templateID);
      return listed.map((t) => ({ tag: t.tag, buildID: t.buildId, createdAt: t.createdAt.toISOString() }));
    },
  );
}
