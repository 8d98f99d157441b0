// E2B's template build API as the e2b SDK's `Template.build` calls it: POST /v3/templates records
// a build (templateID is the template's name), GET /templates/{id}/files/{hash} says whether a COPY
// step's file set is already kept and where to upload it (template-uploads.ts), POST
// /v2/templates/{id}/builds/{buildID} starts the build with the SDK's steps, and GET
// .../builds/{buildID}/status returns its state and log lines from an offset. The build itself is
// the Dockerfile builder's (templates/builder.ts): same steps, same per-step layer cache.
import { type Static, Type } from '@sinclair/typebox';
import {
  CAPSULE_LIMITS,
  ConflictError,
  InvalidArgumentError,
  imageReferenceProblem,
  messageOf,
  NotFoundError,
  type RegistryCredentials,
} from '@wrenn/protocol';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { createBuild, getBuild, setBuildStatus, type TemplateBuild } from '../../db/repositories/template-builds.js';
import { setTemplateTags } from '../../db/repositories/template-tags.js';
import { ensureImageTemplate } from '../../services/image-templates.js';
import { DEFAULT_TAG, parseTemplateRef, storedTags } from '../../services/template-refs.js';
import { BuildLog } from '../../templates/build-log.js';
import { type StepsBuildInput, startStepsBuild } from '../../templates/builder.js';
import { hasFileSet, touchFileSet, validateFilesHash } from '../../templates/file-sets.js';
import { e2bTeam } from './auth.js';
import { errorResponses } from './schemas.js';
import { type E2bBuildStart, mapBuildStart } from './template-steps.js';
import { uploadUrl } from './template-uploads.js';

const tags = ['e2b'];
/** Log entries one status call returns at most (the SDK keeps polling until none are left). */
const LOG_PAGE = 100;

const BuildParams = Type.Object({
  templateID: Type.String({ minLength: 1, maxLength: 128 }),
  buildID: Type.String({ minLength: 1, maxLength: 64 }),
});
const LogEntry = Type.Object({
  timestamp: Type.String(),
  level: Type.String(),
  message: Type.String(),
  step: Type.Optional(Type.String()),
});

const TemplateRequest = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  alias: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 20 })),
  cpuCount: Type.Optional(Type.Integer({ minimum: CAPSULE_LIMITS.minVcpus, maximum: CAPSULE_LIMITS.maxVcpus })),
  memoryMB: Type.Optional(Type.Integer({ minimum: CAPSULE_LIMITS.minMemoryMb, maximum: CAPSULE_LIMITS.maxMemoryMb })),
  teamID: Type.Optional(Type.String({ maxLength: 128 })),
});

const Step = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 32 }),
  args: Type.Optional(Type.Array(Type.String(), { maxItems: 1000 })),
  force: Type.Optional(Type.Boolean()),
  filesHash: Type.Optional(Type.String({ maxLength: 128 })),
});
const BuildStart = Type.Object({
  fromImage: Type.Optional(Type.String({ maxLength: 512 })),
  fromTemplate: Type.Optional(Type.String({ maxLength: 128 })),
  fromImageRegistry: Type.Optional(Type.Unknown()),
  startCmd: Type.Optional(Type.String({ maxLength: 65536 })),
  readyCmd: Type.Optional(Type.String({ maxLength: 65536 })),
  steps: Type.Optional(Type.Array(Step, { maxItems: 1000 })),
  force: Type.Optional(Type.Boolean()),
});

/** `fromImageRegistry` of the SDK: username/password ('registry'); AWS and GCP logins are not supported. */
function registryCredentialsOf(given: unknown): RegistryCredentials | undefined {
  if (given === undefined || given === null) return undefined;
  const r = given as { type?: unknown; username?: unknown; password?: unknown };
  if (r.type !== 'registry')
    throw new InvalidArgumentError(
      `fromImageRegistry type '${String(r.type).slice(0, 20)}' is not supported here; give username and password (type 'registry')`,
    );
  if (typeof r.username !== 'string' || typeof r.password !== 'string')
    throw new InvalidArgumentError('fromImageRegistry needs a username and a password');
  return { username: r.username, password: r.password };
}

/**
 * Builds started together from the same image share one pull: the agent's image template store
 * fails one of two concurrent makes of the same image (ENOTEMPTY when the second renames its
 * finished directory into place), so this process never asks twice at once.
 */
const pulls = new Map<string, Promise<Awaited<ReturnType<typeof ensureImageTemplate>>>>();
function sharedPull(
  key: string,
  pull: () => ReturnType<typeof ensureImageTemplate>,
): ReturnType<typeof ensureImageTemplate> {
  let p = pulls.get(key);
  if (!p) {
    p = pull().finally(() => pulls.delete(key));
    pulls.set(key, p);
  }
  return p;
}

/**
 * Pulls the image (into the host's layer cache, as the team's image template) with its progress
 * in the build log, then runs the steps on it; a failed pull fails the build with the registry's
 * reason. Runs in the background: a cold pull can take longer than the SDK waits for an answer.
 */
async function buildFromImage(
  ctx: ControlPlaneContext,
  teamId: string,
  image: string,
  credentials: RegistryCredentials | undefined,
  input: Omit<StepsBuildInput, 'from'>,
): Promise<void> {
  const log = new BuildLog(ctx, input.buildId);
  try {
    log.line(`Pulling ${image}`);
    const img = await sharedPull(`${teamId}\0${image}\0${JSON.stringify(credentials ?? null)}`, () =>
      ensureImageTemplate(ctx, teamId, {
        image,
        ...(credentials ? { credentials } : {}),
        onProgress: (line) => log.line(line),
      }),
    );
    log.line(
      `Image ${img.reference}: ${img.layerCount} layers, ${img.cachedLayers} cached, ${img.downloadedBytes} bytes downloaded`,
    );
    await log.flush();
    await startStepsBuild(ctx, teamId, { ...input, from: img.template.name });
  } catch (err) {
    const message = messageOf(err);
    log.line(`ERROR: ${message}`);
    await log.flush();
    await setBuildStatus(ctx.database.db, input.buildId, 'error', message, 'base').catch((e: unknown) =>
      ctx.log.error({ err: e, buildId: input.buildId }, 'could not record a failed build'),
    );
  }
}

/** The team's build of that template, or 404. */
async function buildOf(ctx: ControlPlaneContext, teamId: string, templateID: string, buildID: string) {
  const b = await getBuild(ctx.database.db, buildID, teamId);
  if (!b || b.template !== parseTemplateRef(templateID).name)
    throw new NotFoundError(`build '${buildID}' of template '${templateID}' not found`);
  return b;
}

const E2B_STATUS: Record<TemplateBuild['status'], 'waiting' | 'building' | 'ready' | 'error'> = {
  pending: 'waiting',
  building: 'building',
  ready: 'ready',
  error: 'error',
};

/** The build log as entries: complete lines only while it runs, so an offset never splits a line. */
export function logEntriesOf(b: TemplateBuild): { level: string; message: string }[] {
  let text = b.logs;
  const done = b.status === 'ready' || b.status === 'error';
  if (!done) text = text.slice(0, text.lastIndexOf('\n') + 1);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((message) => ({ level: message.startsWith('ERROR:') ? 'error' : 'info', message }));
}

export function templateBuildRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.post(
    '/v3/templates',
    {
      schema: {
        tags,
        summary: "Request a template build (the e2b SDK's Template.build, first call)",
        body: TemplateRequest,
        response: {
          202: Type.Object({
            templateID: Type.String(),
            buildID: Type.String(),
            names: Type.Array(Type.String()),
            aliases: Type.Array(Type.String()),
            tags: Type.Array(Type.String()),
            public: Type.Boolean(),
          }),
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const body = req.body as Static<typeof TemplateRequest>;
      const given = body.name ?? body.alias;
      if (!given) throw new InvalidArgumentError('give the template name (name)');
      const { name, tags: givenTags } = parseTemplateRef(given, body.tags);
      // cpuCount/memoryMB: the capsule shape of the template, applied when the build saves it.
      const build = await createBuild(ctx.database.db, {
        template: name,
        teamId: team.id,
        status: 'pending',
        vcpus: body.cpuCount,
        memoryMb: body.memoryMB,
      });
      await setTemplateTags(ctx.database.db, team.id, name, storedTags(givenTags), build.id);
      return reply.status(202).send({
        templateID: name,
        buildID: build.id,
        names: [name],
        aliases: [name],
        tags: givenTags.length ? givenTags : [DEFAULT_TAG],
        public: false,
      });
    },
  );

  app.get(
    '/templates/:templateID/files/:hash',
    {
      schema: {
        tags,
        summary: "Whether a COPY step's file set is already kept, and where to upload it",
        params: Type.Object({
          templateID: Type.String({ minLength: 1, maxLength: 128 }),
          hash: Type.String({ minLength: 1, maxLength: 128 }),
        }),
        response: { 201: Type.Object({ present: Type.Boolean(), url: Type.String() }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const { templateID, hash } = req.params as { templateID: string; hash: string };
      validateFilesHash(hash);
      const db = ctx.database.db;
      const present = await hasFileSet(db, team.id, hash);
      // The SDK uploads nothing after a yes: the TTL of the stored set counts from here.
      if (present) await touchFileSet(db, team.id, hash);
      return reply.status(201).send({ present, url: await uploadUrl(ctx, team.id, templateID, hash, req.host) });
    },
  );

  app.post(
    '/v2/templates/:templateID/builds/:buildID',
    {
      schema: {
        tags,
        summary: 'Start a requested build with the SDK’s steps',
        params: BuildParams,
        body: BuildStart,
        response: { 202: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const { templateID, buildID } = req.params as Static<typeof BuildParams>;
      const build = await buildOf(ctx, team.id, templateID, buildID);
      if (build.status !== 'pending')
        throw new ConflictError(`build '${buildID}' was already started (it is ${E2B_STATUS[build.status]})`);
      const mapped = mapBuildStart(req.body as E2bBuildStart);
      for (const hash of mapped.filesHashes) {
        if (!(await hasFileSet(ctx.database.db, team.id, hash)))
          throw new InvalidArgumentError(
            `the files of a COPY step (hash ${hash}) were not uploaded; ask GET /templates/${templateID}/files/${hash} for the upload URL`,
          );
        await touchFileSet(ctx.database.db, team.id, hash);
      }
      const input = {
        buildId: build.id,
        name: build.template,
        fromLabel: mapped.fromLabel,
        steps: mapped.steps,
        force: (req.body as E2bBuildStart).force === true,
        vcpus: build.vcpus,
        memoryMb: build.memoryMb,
      };
      if ('image' in mapped.from) {
        const image = mapped.from.image;
        const problem = imageReferenceProblem(image, 'fromImage');
        if (problem) throw new InvalidArgumentError(problem);
        const credentials = registryCredentialsOf((req.body as E2bBuildStart).fromImageRegistry);
        await setBuildStatus(ctx.database.db, build.id, 'building');
        void buildFromImage(ctx, team.id, image, credentials, input);
      } else {
        await startStepsBuild(ctx, team.id, { ...input, from: mapped.from.template });
      }
      return reply.status(202).send(null);
    },
  );

  app.get(
    '/templates/:templateID/builds/:buildID/status',
    {
      schema: {
        tags,
        summary: 'Build status and log entries from an offset',
        params: BuildParams,
        querystring: Type.Object({
          logsOffset: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: LOG_PAGE })),
          level: Type.Optional(
            Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')]),
          ),
        }),
        response: {
          200: Type.Object({
            templateID: Type.String(),
            buildID: Type.String(),
            status: Type.String(),
            logEntries: Type.Array(LogEntry),
            logs: Type.Array(Type.String()),
            reason: Type.Optional(
              Type.Object({
                message: Type.String(),
                step: Type.Optional(Type.String()),
                logEntries: Type.Array(LogEntry),
              }),
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const { templateID, buildID } = req.params as Static<typeof BuildParams>;
      const q = req.query as { logsOffset?: number; limit?: number; level?: string };
      const b = await buildOf(ctx, team.id, templateID, buildID);
      const at = (b.finishedAt ?? b.startedAt).toISOString();
      const offset = q.logsOffset ?? 0;
      const page = logEntriesOf(b)
        .slice(offset, offset + (q.limit ?? LOG_PAGE))
        .map((e) => ({ timestamp: at, ...e }));
      return {
        templateID: b.template,
        buildID: b.id,
        status: E2B_STATUS[b.status],
        logEntries: page,
        logs: page.map((e) => e.message),
        ...(b.status === 'error'
          ? {
              reason: {
                message: b.error ?? 'build failed',
                ...(b.failedStep ? { step: b.failedStep } : {}),
                logEntries: [],
              },
            }
          : {}),
      };
    },
  );
}
