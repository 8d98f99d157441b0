// E2B's template tags API: POST /templates/tags points more tags at the build 'name:tag' (or the
// latest build) names, DELETE /templates/tags removes tags, GET /templates/{id}/tags lists them
// ('default' is always the latest finished build and cannot be moved or removed).
import { Type } from '@sinclair/typebox';
import { InvalidArgumentError } from '@wrenn/protocol';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { deleteTemplateTags, listTemplateTags, setTemplateTags } from '../../db/repositories/template-tags.js';
import { dropUntaggedKeptBuilds, latestReadyBuild } from '../../services/tagged-builds.js';
import { resolveTemplate } from '../../services/templates.js';
import { e2bTeam } from './auth.js';
import { errorResponses } from './schemas.js';
import { buildIdOfRef, DEFAULT_TAG, parseTemplateRef, storedTags, validateTag } from './template-refs.js';

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
      const target = parseTemplateRef(body.target);
      const newTags = [...new Set(body.tags.map(validateTag))];
      if (newTags.includes(DEFAULT_TAG))
        throw new InvalidArgumentError(`'${DEFAULT_TAG}' always means the latest build and cannot be assigned`);
      await resolveTemplate(ctx, team.id, target.name);
      const buildID = await buildIdOfRef(ctx, team.id, target.name, target.tags[0]);
      await setTemplateTags(ctx.database.db, team.id, target.name, newTags, buildID);
      await dropUntaggedKeptBuilds(ctx, team.id, target.name);
      return reply.status(201).send({ buildID, tags: newTags });
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
      const { name } = parseTemplateRef(body.name);
      const gone = body.tags.map(validateTag);
      if (gone.includes(DEFAULT_TAG))
        throw new InvalidArgumentError(
          `'${DEFAULT_TAG}' is the latest build of '${name}'; delete the template instead`,
        );
      await resolveTemplate(ctx, team.id, name);
      await deleteTemplateTags(ctx.database.db, team.id, name, storedTags(gone));
      await dropUntaggedKeptBuilds(ctx, team.id, name);
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
      const { name } = parseTemplateRef((req.params as { templateID: string }).templateID);
      const t = await resolveTemplate(ctx, team.id, name);
      const latest = await latestReadyBuild(ctx, team.id, t.name);
      const listed = (await listTemplateTags(ctx.database.db, team.id, t.name)).map((x) => ({
        tag: x.tag,
        buildID: x.buildId,
        createdAt: x.createdAt.toISOString(),
      }));
      const dflt = {
        tag: DEFAULT_TAG,
        buildID: latest?.id ?? t.id,
        createdAt: (latest?.finishedAt ?? t.createdAt).toISOString(),
      };
      return [dflt, ...listed];
    },
  );
}
