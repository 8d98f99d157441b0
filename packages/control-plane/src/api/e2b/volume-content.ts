// E2B's volume content API (/volumecontent/{volumeID}/path|dir|file), which the e2b SDK's Volume
// instance methods call with the volume's own token (Authorization: Bearer), not an API key: list,
// make directories, stat, change owner and mode, read, write and remove files of a volume without
// any sandbox. Every path is confined to the volume on its host (host-agent volumes/volume-content.ts).
import { Type } from '@sinclair/typebox';
import { VOLUME_LIMITS } from '@wrenn/protocol';
import type { VolumeEntry } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { authorizeVolumeContent, type VolumeContentInput, volumeContent } from '../../services/volumes.js';
import { e2bErrorHandler } from './errors.js';
import { errorResponses } from './schemas.js';

const tags = ['e2b'];
const Params = Type.Object({ volumeID: Type.String({ minLength: 1, maxLength: 128 }) });
const PathQuery = Type.Object({ path: Type.String({ maxLength: 4096 }) });
const MetaQuery = Type.Object({
  path: Type.String({ maxLength: 4096 }),
  uid: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  gid: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o7777 })),
  force: Type.Optional(Type.Boolean()),
});
const EntryStat = Type.Object({
  name: Type.String(),
  path: Type.String(),
  type: Type.String(),
  size: Type.Integer(),
  mode: Type.Integer(),
  uid: Type.Integer(),
  gid: Type.Integer(),
  atime: Type.String(),
  mtime: Type.String(),
  ctime: Type.String(),
  target: Type.Optional(Type.String()),
});

const iso = (ms: bigint) => new Date(Number(ms)).toISOString();
const toJson = (e: VolumeEntry) => ({
  name: e.name,
  path: e.path,
  type: e.type,
  size: Number(e.size),
  mode: e.mode,
  uid: e.uid,
  gid: e.gid,
  atime: iso(e.atime),
  mtime: iso(e.mtime),
  ctime: iso(e.ctime),
  ...(e.target ? { target: e.target } : {}),
});

type Meta = { path: string; uid?: number; gid?: number; mode?: number; force?: boolean };
const metaOf = (q: Meta) => ({
  path: q.path,
  ...(q.uid !== undefined ? { uid: q.uid } : {}),
  ...(q.gid !== undefined ? { gid: q.gid } : {}),
  ...(q.mode !== undefined ? { mode: q.mode } : {}),
  ...(q.force !== undefined ? { force: q.force } : {}),
});

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

export const volumeContentApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  app.setErrorHandler(e2bErrorHandler);
  // File bodies arrive as raw bytes, up to the contract's one-request limit.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: VOLUME_LIMITS.maxContentWriteBytes },
    (_req, body, done) => done(null, body),
  );
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, body === '' ? {} : JSON.parse(body as string));
    } catch (err) {
      done(err as Error);
    }
  });
  const run = async (req: FastifyRequest, input: VolumeContentInput) => {
    const v = await authorizeVolumeContent(ctx, (req.params as { volumeID: string }).volumeID, bearer(req));
    return volumeContent(ctx, v, input);
  };
  routes(app, run);
};

type Run = (req: FastifyRequest, input: VolumeContentInput) => ReturnType<typeof volumeContent>;

function routes(app: FastifyInstance, run: Run): void {
  const base = '/volumecontent/:volumeID';
  app.get(
    `${base}/dir`,
    {
      schema: {
        tags,
        summary: 'List a volume directory',
        params: Params,
        querystring: Type.Object({
          path: Type.String({ maxLength: 4096 }),
          depth: Type.Optional(Type.Integer({ minimum: 1, maximum: VOLUME_LIMITS.maxListDepth })),
        }),
        response: { 200: Type.Array(EntryStat), ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query as { path: string; depth?: number };
      const res = await run(req, { op: 'list', path: q.path, ...(q.depth ? { depth: q.depth } : {}) });
      return res.entries.map(toJson);
    },
  );
  app.post(
    `${base}/dir`,
    {
      schema: {
        tags,
        summary: 'Make a volume directory',
        params: Params,
        querystring: MetaQuery,
        response: { 201: EntryStat, ...errorResponses },
      },
    },
    async (req, reply) => {
      const res = await run(req, { op: 'mkdir', ...metaOf(req.query as Meta) });
      return reply.status(201).send(toJson(res.entries[0] as VolumeEntry));
    },
  );
  app.get(
    `${base}/path`,
    {
      schema: {
        tags,
        summary: 'Stat a volume path',
        params: Params,
        querystring: PathQuery,
        response: { 200: EntryStat, ...errorResponses },
      },
    },
    async (req) =>
      toJson((await run(req, { op: 'stat', path: (req.query as { path: string }).path })).entries[0] as VolumeEntry),
  );
  app.patch(
    `${base}/path`,
    {
      schema: {
        tags,
        summary: "Change a volume path's owner or mode",
        params: Params,
        querystring: PathQuery,
        body: Type.Object({
          uid: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
          gid: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
          mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o7777 })),
        }),
        response: { 200: EntryStat, ...errorResponses },
      },
    },
    async (req) => {
      const b = (req.body ?? {}) as Omit<Meta, 'path' | 'force'>;
      const res = await run(req, { op: 'chmod', ...metaOf({ ...b, path: (req.query as { path: string }).path }) });
      return toJson(res.entries[0] as VolumeEntry);
    },
  );
  app.delete(
    `${base}/path`,
    {
      schema: {
        tags,
        summary: 'Remove a volume path (directories with what they hold)',
        params: Params,
        querystring: PathQuery,
      },
    },
    async (req, reply) => {
      await run(req, { op: 'remove', path: (req.query as { path: string }).path });
      return reply.status(204).send();
    },
  );
  app.get(
    `${base}/file`,
    { schema: { tags, summary: 'Read a volume file', params: Params, querystring: PathQuery } },
    async (req, reply) => {
      const res = await run(req, { op: 'read', path: (req.query as { path: string }).path });
      return reply.type('application/octet-stream').send(Buffer.from(res.data));
    },
  );
  app.put(
    `${base}/file`,
    {
      bodyLimit: VOLUME_LIMITS.maxContentWriteBytes,
      schema: {
        tags,
        summary: 'Write a volume file',
        params: Params,
        querystring: MetaQuery,
        response: { 200: EntryStat, 201: EntryStat, ...errorResponses },
      },
    },
    async (req) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const res = await run(req, { op: 'write', ...metaOf(req.query as Meta), data: body });
      return toJson(res.entries[0] as VolumeEntry);
    },
  );
}
