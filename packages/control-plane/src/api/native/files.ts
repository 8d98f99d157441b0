// Files of a capsule: streamed upload (raw body, any size, never buffered whole) and download,
// directory listing, mkdir and remove; processes: list and kill.
import { Readable } from 'node:stream';
import { type FastifyPluginAsyncTypebox, Type } from '@fastify/type-provider-typebox';
import type { FileEntry } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { capsuleAgent } from '../../services/capsules.js';
import { teamOf } from '../auth.js';
import { abortOnDisconnect } from './disconnect.js';
import {
  CapsuleIdParams,
  errors,
  FileEntrySchema,
  ListFilesQuery,
  MkdirBody,
  PathQuery,
  ProcessParams,
  ProcessSchema,
} from './schemas.js';

/** Agent messages carry at most this many bytes of file data. */
const CHUNK = 64 * 1024;

export const fileEntryJson = (e: FileEntry | undefined) => ({
  name: e?.name ?? '',
  path: e?.path ?? '',
  type: e?.type ?? 'file',
  size: Number(e?.size ?? 0n),
  mode: e?.mode ?? 0,
  owner: e?.owner ?? '',
  group: e?.group ?? '',
  modified_at: e && e.modifiedAt > 0n ? new Date(Number(e.modifiedAt)).toISOString() : null,
  ...(e?.symlinkTarget ? { symlink_target: e.symlinkTarget } : {}),
});

export const fileRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    const tags = ['files'];
    const running = (req: FastifyRequest, id: string, action: string) =>
      capsuleAgent(ctx, teamOf(req).id, id, ['running'], action);

    // Uploads get the raw request stream: no parser may read (or size-limit) the body first.
    await app.register(async (raw: FastifyInstance) => {
      raw.removeAllContentTypeParsers();
      raw.addContentTypeParser('*', (_req, _payload, done) => done(null));
      raw.withTypeProvider<import('@fastify/type-provider-typebox').TypeBoxTypeProvider>().put(
        '/capsules/:id/files',
        {
          bodyLimit: Number.MAX_SAFE_INTEGER,
          config: { streamedBody: true },
          schema: {
            tags,
            summary: 'Upload a file (raw body; parent directories are created)',
            params: CapsuleIdParams,
            querystring: PathQuery,
            response: {
              200: Type.Object({ path: Type.String(), bytes_written: Type.Integer(), entry: FileEntrySchema }),
              ...errors(400, 401, 404, 409),
            },
          },
        },
        async (req) => {
          const { agent, capsule } = await running(req, req.params.id, 'upload files to');
          const q = req.query;
          const source = req.raw;
          async function* messages() {
            yield {
              part: {
                case: 'header' as const,
                value: { capsuleId: capsule.id, path: q.path, user: q.user ?? '', mode: 0 },
              },
            };
            for await (const chunk of source as AsyncIterable<Buffer>) {
              for (let off = 0; off < chunk.length; off += CHUNK)
                yield { part: { case: 'data' as const, value: chunk.subarray(off, off + CHUNK) } };
            }
          }
          const life = abortOnDisconnect(req);
          try {
            const res = await agent.writeFile(messages(), { signal: life.signal });
            return {
              path: res.entry?.path || q.path,
              bytes_written: Number(res.bytesWritten),
              entry: fileEntryJson(res.entry),
            };
          } finally {
            life.done();
          }
        },
      );
    });

    app.get(
      '/capsules/:id/files',
      {
        schema: {
          tags,
          summary: 'Download a file (streamed)',
          params: CapsuleIdParams,
          querystring: PathQuery,
          response: { 200: Type.Unsafe<unknown>({ type: 'string', format: 'binary' }), ...errors(400, 401, 404, 409) },
        },
      },
      async (req, reply) => {
        const { agent, capsule } = await running(req, req.params.id, 'download files from');
        const life = abortOnDisconnect(req);
        const it = agent
          .readFile(
            { capsuleId: capsule.id, path: req.query.path, user: req.query.user ?? '' },
            { signal: life.signal },
          )
          [Symbol.asyncIterator]();
        let first: IteratorResult<{ data: Uint8Array }>;
        try {
          // The first chunk (or the error) decides the status before any byte is sent.
          first = await it.next();
        } catch (err) {
          life.done();
          throw err;
        }
        async function* body() {
          try {
            if (!first.done) yield Buffer.from(first.value.data);
            for (;;) {
              const n = await it.next();
              if (n.done) return;
              yield Buffer.from(n.value.data);
            }
          } finally {
            life.done();
          }
        }
        const name = req.query.path.split('/').filter(Boolean).pop() ?? 'file';
        return reply
          .type('application/octet-stream')
          .header('content-disposition', `attachment; filename="${name.replace(/["\\\r\n]/g, '_')}"`)
          .send(Readable.from(body()));
      },
    );

    app.get(
      '/capsules/:id/files/list',
      {
        schema: {
          tags,
          summary: 'List a directory',
          params: CapsuleIdParams,
          querystring: ListFilesQuery,
          response: { 200: Type.Object({ entries: Type.Array(FileEntrySchema) }), ...errors(400, 401, 404, 409) },
        },
      },
      async (req) => {
        const { agent, capsule } = await running(req, req.params.id, 'list files of');
        const res = await agent.listDir({
          capsuleId: capsule.id,
          path: req.query.path,
          depth: req.query.depth ?? 1,
          user: req.query.user ?? '',
        });
        return { entries: res.entries.map(fileEntryJson) };
      },
    );

    app.post(
      '/capsules/:id/files/mkdir',
      {
        schema: {
          tags,
          summary: 'Make a directory (and its parents)',
          params: CapsuleIdParams,
          body: MkdirBody,
          response: { 200: Type.Object({ entry: FileEntrySchema }), ...errors(400, 401, 404, 409) },
        },
      },
      async (req) => {
        const { agent, capsule } = await running(req, req.params.id, 'make directories in');
        const res = await agent.makeDir({ capsuleId: capsule.id, path: req.body.path, user: req.body.user ?? '' });
        return { entry: fileEntryJson(res.entry) };
      },
    );

    app.delete(
      '/capsules/:id/files',
      {
        schema: {
          tags,
          summary: 'Remove a file or directory tree',
          params: CapsuleIdParams,
          querystring: PathQuery,
          response: { 204: Type.Null(), ...errors(400, 401, 404, 409) },
        },
      },
      async (req, reply) => {
        const { agent, capsule } = await running(req, req.params.id, 'remove files from');
        await agent.removePath({ capsuleId: capsule.id, path: req.query.path, user: req.query.user ?? '' });
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/capsules/:id/processes',
      {
        schema: {
          tags: ['processes'],
          summary: 'Processes started through envd (commands, terminals)',
          params: CapsuleIdParams,
          response: { 200: Type.Object({ processes: Type.Array(ProcessSchema) }), ...errors(401, 404, 409) },
        },
      },
      async (req) => {
        const { agent, capsule } = await running(req, req.params.id, 'list processes of');
        const res = await agent.listProcesses({ capsuleId: capsule.id });
        return {
          processes: res.processes.map((p) => ({ pid: p.pid, tag: p.tag, cmd: p.cmd, args: p.args, cwd: p.cwd })),
        };
      },
    );

    app.delete(
      '/capsules/:id/processes/:pid',
      {
        schema: {
          tags: ['processes'],
          summary: 'Kill a process (SIGKILL, or SIGTERM with ?signal=15)',
          params: ProcessParams,
          querystring: Type.Object(
            { signal: Type.Optional(Type.Union([Type.Literal(9), Type.Literal(15)])) },
            { additionalProperties: false },
          ),
          response: { 204: Type.Null(), ...errors(400, 401, 404, 409) },
        },
      },
      async (req, reply) => {
        const { agent, capsule } = await running(req, req.params.id, 'kill processes in');
        await agent.killProcess({
          capsuleId: capsule.id,
          process: { selector: { case: 'pid', value: req.params.pid } },
          signal: req.query.signal ?? 9,
        });
        return reply.status(204).send(null);
      },
    );
  };
