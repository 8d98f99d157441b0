// File routes the host agent has no RPC for, served straight from the capsule's envd:
//
// POST /capsules/:id/files/move {from, to, user?} -> {entry}
// GET  /capsules/:id/files/stat?path=&user= -> {entry} (404 when the path does not exist)
// GET  /capsules/:id/files/watch?path=&recursive=&user= (WebSocket): {type:'start'} then
//      {type:'event', name, kind: create|write|remove|rename|chmod}.

import { Type } from '@fastify/type-provider-typebox';
import { type EntryInfo, EventType, FileType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ControlPlaneContext } from '../../context.js';
import { type Capsule, capsuleAgent } from '../../services/capsules.js';
import { teamOf } from '../auth.js';
import { type CapsuleEnvd, envdAccess, userHeaders } from './envd-access.js';
import { CapsuleIdParams, errors, FileEntrySchema } from './schemas.js';
import { loadRunningCapsule, socketCapsule } from './socket-capsule.js';
import { closeWithError, sendJson } from './ws-messages.js';

const FILE_TYPES: Record<number, string> = {
  [FileType.FILE]: 'file',
  [FileType.DIRECTORY]: 'dir',
  [FileType.SYMLINK]: 'symlink',
};
const EVENT_KINDS: Record<number, string> = {
  [EventType.CREATE]: 'create',
  [EventType.WRITE]: 'write',
  [EventType.REMOVE]: 'remove',
  [EventType.RENAME]: 'rename',
  [EventType.CHMOD]: 'chmod',
};

export function entryJson(e: EntryInfo | undefined) {
  const t = e?.modifiedTime;
  return {
    name: e?.name ?? '',
    path: e?.path ?? '',
    type: FILE_TYPES[e?.type ?? 0] ?? 'file',
    size: Number(e?.size ?? 0n),
    mode: e?.mode ?? 0,
    owner: e?.owner ?? '',
    group: e?.group ?? '',
    modified_at:
      t && t.seconds > 0n ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString() : null,
    ...(e?.symlinkTarget ? { symlink_target: e.symlinkTarget } : {}),
  };
}

export function envdFileRoutes(ctx: ControlPlaneContext) {
  const envdFor = envdAccess(ctx);
  const loadRunning = loadRunningCapsule(ctx);
  return async (app: FastifyInstance) => {
    const running = async (req: FastifyRequest, action: string): Promise<Capsule> => {
      const { id } = req.params as { id: string };
      return (await capsuleAgent(ctx, teamOf(req).id, id, ['running'], action)).capsule;
    };
    const withEnvd = async <T>(capsule: Capsule, fn: (envd: CapsuleEnvd) => Promise<T>): Promise<T> => {
      const envd = await envdFor(capsule);
      try {
        return await fn(envd);
      } finally {
        envd.close();
      }
    };

    app.post(
      '/capsules/:id/files/move',
      {
        schema: {
          tags: ['files'],
          summary: 'Move or rename a file or directory',
          params: CapsuleIdParams,
          body: Type.Object(
            {
              from: Type.String({ minLength: 1 }),
              to: Type.String({ minLength: 1 }),
              user: Type.Optional(Type.String()),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ entry: FileEntrySchema }), ...errors(400, 401, 404, 409) },
        },
      },
      async (req) => {
        const capsule = await running(req, 'move files in');
        const b = req.body as { from: string; to: string; user?: string };
        const res = await withEnvd(capsule, (envd) =>
          envd.filesystem.move({ source: b.from, destination: b.to }, { headers: userHeaders(b.user) }),
        );
        return { entry: entryJson(res.entry) };
      },
    );

    app.get(
      '/capsules/:id/files/stat',
      {
        schema: {
          tags: ['files'],
          summary: 'Information about one path (404 when it does not exist)',
          params: CapsuleIdParams,
          querystring: Type.Object(
            { path: Type.String({ minLength: 1 }), user: Type.Optional(Type.String()) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ entry: FileEntrySchema }), ...errors(400, 401, 404, 409) },
        },
      },
      async (req) => {
        const capsule = await running(req, 'read files of');
        const q = req.query as { path: string; user?: string };
        const res = await withEnvd(capsule, (envd) =>
          envd.filesystem.stat({ path: q.path }, { headers: userHeaders(q.user) }),
        );
        return { entry: entryJson(res.entry) };
      },
    );

    app.get(
      '/capsules/:id/files/watch',
      {
        websocket: true,
        preHandler: loadRunning,
        schema: {
          tags: ['files'],
          summary: 'Changes under a directory (WebSocket)',
          params: CapsuleIdParams,
          querystring: Type.Object(
            {
              path: Type.String({ minLength: 1 }),
              recursive: Type.Optional(Type.Boolean()),
              user: Type.Optional(Type.String()),
              api_key: Type.Optional(Type.String()),
            },
            { additionalProperties: false },
          ),
        },
      },
      (ws: WebSocket, req: FastifyRequest) => {
        const { capsule } = socketCapsule(req);
        const q = req.query as { path: string; recursive?: boolean; user?: string };
        const abort = new AbortController();
        let envd: CapsuleEnvd | undefined;
        ws.on('close', () => {
          abort.abort();
          setTimeout(() => envd?.close(), 1000).unref();
        });
        void (async () => {
          try {
            envd = await envdFor(capsule);
            const events = envd.filesystem.watchDir(
              { path: q.path, recursive: q.recursive === true },
              { headers: userHeaders(q.user), signal: abort.signal },
            );
            for await (const res of events) {
              const e = res.event;
              if (e.case === 'start') sendJson(ws, { type: 'start' });
              else if (e.case === 'filesystem')
                sendJson(ws, { type: 'event', name: e.value.name, kind: EVENT_KINDS[e.value.type] ?? 'unknown' });
            }
            if (ws.readyState === ws.OPEN) ws.close(1000, 'watch ended');
          } catch (err) {
            if (!abort.signal.aborted) closeWithError(ws, err);
          }
        })();
      },
    );
  };
}
