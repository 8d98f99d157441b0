// Template tags in the native API (the same tags as E2B's API, services/template-tags.ts):
// GET /v1/templates/:ref/tags lists a template's tags, POST /v1/templates/:ref/tags points tags at
// the build `ref` names ('name' = its latest build, or 'name:tag'), DELETE
// /v1/templates/:name/tags/:tag removes one. `template: 'name:tag'` on capsule create starts that build.
import { type FastifyPluginAsyncTypebox, Type } from '@fastify/type-provider-typebox';
import { AssignedTagsSchema, TemplateTagSchema } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { assignTags, listTags, removeTags } from '../../services/template-tags.js';
import { teamOf } from '../auth.js';
import { errors } from './schemas.js';

const tags = ['templates'];
const Ref = Type.String({ minLength: 1, maxLength: 192, description: "Template name, or 'name:tag'" });

export const templateTagRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/templates/:ref/tags',
      {
        schema: {
          tags,
          summary: "A template's tags and the builds they point at ('default' is its latest build)",
          params: Type.Object({ ref: Ref }),
          response: { 200: Type.Object({ tags: Type.Array(TemplateTagSchema) }), ...errors(400, 401, 404) },
        },
      },
      async (req) => ({
        tags: (await listTags(ctx, teamOf(req).id, req.params.ref)).map((t) => ({
          tag: t.tag,
          build_id: t.buildId,
          created_at: t.createdAt.toISOString(),
        })),
      }),
    );

    app.post(
      '/templates/:ref/tags',
      {
        schema: {
          tags,
          summary: "Point tags at the build 'name' (its latest) or 'name:tag' names",
          params: Type.Object({ ref: Ref }),
          body: Type.Object(
            { tags: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 20 }) },
            { additionalProperties: false },
          ),
          response: {
            201: AssignedTagsSchema,
            ...errors(400, 401, 404, 409),
          },
        },
      },
      async (req, reply) => {
        const r = await assignTags(ctx, teamOf(req).id, req.params.ref, req.body.tags);
        return reply.status(201).send({ build_id: r.buildId, tags: r.tags });
      },
    );

    app.delete(
      '/templates/:name/tags/:tag',
      {
        schema: {
          tags,
          summary: 'Remove a tag from a template',
          params: Type.Object({ name: Ref, tag: Type.String({ minLength: 1, maxLength: 128 }) }),
          response: { 204: Type.Null(), ...errors(400, 401, 404) },
        },
      },
      async (req, reply) => {
        await removeTags(ctx, teamOf(req).id, req.params.name, [req.params.tag]);
        return reply.status(204).send(null);
      },
    );
  };
