// Templates built from a Dockerfile: POST /v1/templates starts a build, GET
// /v1/templates/builds/:id reports it and GET /v1/templates/builds/:id/logs streams its log until
// it ends (Server-Sent Events when the client accepts text/event-stream, plain text otherwise).
//
// Request bodies: JSON {name, dockerfile, files: {path: base64}, build_args: {NAME: value}} or
// multipart/form-data with the fields `name`, `dockerfile` and `build_args` (a JSON object) plus the context as a `context` tar (gzip allowed) and/or file
// parts whose filename is the path in the context (multipart/build-upload.ts).

import { type FastifyPluginAsyncTypebox, Type } from '@fastify/type-provider-typebox';
import { InvalidArgumentError, NotFoundError } from '@wrenn/protocol';
import type { FastifyRequest } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { getBuild, listBuilds, type TemplateBuild } from '../../db/repositories/template-builds.js';
import { type BuildContext, BuildContextError, CONTEXT_LIMITS, makeContext } from '../../templates/build-context.js';
import { buildEvents } from '../../templates/build-log.js';
import { isBuildRunning, startTemplateBuild } from '../../templates/builder.js';
import { pruneLayers } from '../../templates/prune-layers.js';
import { teamOf } from '../auth.js';
import { ApiError } from '../errors.js';
import { readMultipartBuild } from './build-upload.js';
import { errors } from './schemas.js';

const tags = ['templates'];
/** JSON bodies carry base64 files; larger contexts should use multipart. */
const BUILD_BODY_LIMIT = 96 * 1024 * 1024;
const BUILD_ID_RE = /^bld-[0-9a-z]+$/;

const CreateBuildBody = Type.Object(
  {
    name: Type.Optional(
      Type.String({ description: 'Template name: 1-63 of a-z 0-9 . _ -, starting with a letter or digit' }),
    ),
    dockerfile: Type.Optional(Type.String({ description: 'Dockerfile text' })),
    files: Type.Optional(
      Type.Record(Type.String(), Type.String(), { description: 'Build context: relative path -> base64 content' }),
    ),
    build_args: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: 'Dockerfile ARG values (like docker build --build-arg): name -> value',
      }),
    ),
  },
  { additionalProperties: false },
);
const BuildSchema = Type.Object({
  build_id: Type.String(),
  template: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('building'), Type.Literal('ready'), Type.Literal('error')]),
  logs: Type.String(),
  error: Type.Union([Type.String(), Type.Null()]),
  started_at: Type.String(),
  finished_at: Type.Union([Type.String(), Type.Null()]),
});
const BuildParams = Type.Object({ id: Type.String({ description: 'Build id (bld-...)' }) });

const buildJson = (b: TemplateBuild) => ({
  build_id: b.id,
  template: b.template,
  status: b.status,
  logs: b.logs,
  error: b.error,
  started_at: b.startedAt.toISOString(),
  finished_at: b.finishedAt ? b.finishedAt.toISOString() : null,
});

function jsonContext(files: Record<string, string> | undefined): BuildContext {
  const entries: [string, { data: Buffer; mode: number }][] = [];
  for (const [path, b64] of Object.entries(files ?? {})) {
    if (!/^[A-Za-z0-9+/=\r\n]*$/.test(b64))
      throw new InvalidArgumentError(`files['${path.slice(0, 80)}'] is not base64`);
    entries.push([path, { data: Buffer.from(b64, 'base64'), mode: 0o644 }]);
  }
  return makeContext(entries);
}

async function buildOf(ctx: ControlPlaneContext, req: FastifyRequest, id: string): Promise<TemplateBuild> {
  if (!BUILD_ID_RE.test(id)) throw new NotFoundError(`template build ${id} not found`);
  const b = await getBuild(ctx.database.db, id, teamOf(req).id);
  if (!b) throw new NotFoundError(`template build ${id} not found`);
  return b;
}

const finished = (b: TemplateBuild): boolean => b.status === 'ready' || b.status === 'error';

export const templateBuildRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    // The multipart body is read by the handler itself (streamed, with limits).
    app.addContentTypeParser('multipart/form-data', (_req, _payload, done) => done(null, {}));

    app.post(
      '/templates',
      {
        bodyLimit: BUILD_BODY_LIMIT,
        // Multipart contexts are streamed by the handler; a JSON one may be large too.
        config: { streamedBody: true },
        schema: {
          tags,
          summary:
            'Build a template from a Dockerfile (JSON with base64 files, or multipart with a context tar / files)',
          body: CreateBuildBody,
          response: {
            202: Type.Object({ build_id: Type.String(), template: Type.String(), status: Type.String() }),
            ...errors(400, 401, 404, 409, 413),
          },
        },
      },
      async (req, reply) => {
        let input: {
          name: string | undefined;
          dockerfile: string | undefined;
          context: BuildContext;
          buildArgs?: Record<string, string> | undefined;
        };
        try {
          if (req.headers['content-type']?.startsWith('multipart/form-data')) {
            input = await readMultipartBuild(req.raw, req.headers);
          } else {
            input = {
              name: req.body.name,
              dockerfile: req.body.dockerfile,
              context: jsonContext(req.body.files),
              buildArgs: req.body.build_args,
            };
          }
        } catch (err) {
          if (err instanceof BuildContextError)
            throw new ApiError(err.tooLarge ? 413 : 400, 'invalid_argument', err.message);
          throw err;
        }
        if (!input.name) throw new InvalidArgumentError('name is required (the template to build, e.g. "my-app")');
        if (input.dockerfile === undefined)
          throw new InvalidArgumentError('dockerfile is required (the Dockerfile text)');
        const b = await startTemplateBuild(ctx, teamOf(req).id, {
          name: input.name,
          dockerfile: input.dockerfile,
          context: input.context,
          ...(input.buildArgs ? { buildArgs: input.buildArgs } : {}),
        });
        return reply.status(202).send({ build_id: b.id, template: b.template, status: b.status });
      },
    );

    app.delete(
      '/templates/builds/cache',
      {
        schema: {
          tags,
          summary: 'Delete the build layers (cache) no template is built on and no capsule runs from',
          response: {
            200: Type.Object({
              deleted: Type.Array(Type.String()),
              kept: Type.Array(Type.Object({ name: Type.String(), reason: Type.String() })),
            }),
            ...errors(401),
          },
        },
      },
      async (req) => pruneLayers(ctx, teamOf(req).id),
    );

    app.get(
      '/templates/builds',
      {
        schema: {
          tags,
          summary: "The team's template builds, newest first (logs left out; read one build for them)",
          querystring: Type.Object(
            {
              template: Type.Optional(Type.String({ description: 'Only builds of this template' })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ builds: Type.Array(BuildSchema) }), ...errors(400, 401) },
        },
      },
      async (req) => {
        const rows = await listBuilds(ctx.database.db, {
          teamId: teamOf(req).id,
          ...(req.query.template ? { template: req.query.template } : {}),
          limit: req.query.limit ?? 100,
        });
        return { builds: rows.map((b) => ({ ...buildJson(b), logs: '' })) };
      },
    );

    app.get(
      '/templates/builds/:id',
      {
        schema: {
          tags,
          summary: 'A template build: status, error and the log so far',
          params: BuildParams,
          response: { 200: BuildSchema, ...errors(401, 404) },
        },
      },
      async (req) => buildJson(await buildOf(ctx, req, req.params.id)),
    );

    app.get(
      '/templates/builds/:id/logs',
      {
        schema: {
          tags,
          summary: 'Stream a build log until the build ends (text/event-stream when accepted, else text/plain)',
          params: BuildParams,
          response: { 200: Type.Unsafe<unknown>({ type: 'string' }), ...errors(401, 404) },
        },
      },
      async (req, reply) => {
        let b = await buildOf(ctx, req, req.params.id);
        const sse = (req.headers.accept ?? '').includes('text/event-stream');
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          'content-type': sse ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
        });
        let closed = false;
        res.on('close', () => (closed = true));
        let sent = 0;
        const send = (text: string) => {
          if (text.length === 0) return;
          if (sse) res.write(`event: log\ndata: ${JSON.stringify({ text })}\n\n`);
          else res.write(text);
        };
        for (;;) {
          send(b.logs.slice(sent));
          sent = b.logs.length;
          if (finished(b) || closed) break;
          // Wake on the next write of this build (same process) or poll (a build run elsewhere).
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              buildEvents.off(b.id, wake);
              resolve();
            };
            const timer = setTimeout(wake, isBuildRunning(b.id) ? 5000 : 1000);
            buildEvents.on(b.id, wake);
          });
          const next = await getBuild(ctx.database.db, b.id).catch(() => null);
          if (!next) break;
          b = next;
        }
        if (!closed) {
          if (sse) res.write(`event: end\ndata: ${JSON.stringify({ status: b.status, error: b.error })}\n\n`);
          else if (b.status === 'error' && b.error && !b.logs.includes(b.error)) res.write(`ERROR: ${b.error}\n`);
          res.end();
        }
      },
    );
  };

export { CONTEXT_LIMITS };
