// Routes the SDK needs beyond the rest of /v1, served straight from the capsule's envd:
//
// GET  /capsules/:id/commands (WebSocket): like exec/stream, plus stdin and background. First
//      client message JSON {cmd, args?, env?, cwd?, user?, tag?, timeout_sec?, stdin?: bool,
//      background?: bool}. Server: {type:'start', pid}, {type:'stdout'|'stderr', data:<base64>},
//      {type:'exit', exit_code, error?}, {type:'error', error:{code,message}}. Client after start:
//      {type:'stdin', data:<base64>}, {type:'close_stdin'}, {type:'kill'}. Closing the socket kills
//      the command unless it was started with background: true.
// GET  /capsules/:id/processes/:pid/connect (WebSocket): the same events and client messages for
//      a process already running; closing the socket leaves it running.
// POST /capsules/:id/processes/:pid/stdin {data_base64?, close?}
// POST /capsules/:id/files/move {from, to, user?} -> {entry}
// GET  /capsules/:id/files/stat?path=&user= -> {entry} (404 when the path does not exist)
// GET  /capsules/:id/files/watch?path=&recursive=&user= (WebSocket): {type:'start'} then
//      {type:'event', name, kind: create|write|remove|rename|chmod}.

import { Type } from '@fastify/type-provider-typebox';
import { InvalidArgumentError } from '@wrenn/protocol';
import { type EntryInfo, EventType, FileType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { type ProcessEvent, Signal } from '@wrenn/protocol/gen/envd/process_pb';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { ControlPlaneContext } from '../../context.js';
import { type Capsule, capsuleAgent, validateCommandTimeout, validateEnvs } from '../../services/capsules.js';
import { teamOf } from '../auth.js';
import { STDIN_BODY_LIMIT } from '../edge.js';

import { type CapsuleEnvd, envdAccess, userHeaders } from './envd-access.js';
import { CapsuleIdParams, errors, FileEntrySchema, ProcessParams } from './schemas.js';
import { closeWithError, sendJson, toBuffer } from './ws-messages.js';

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

interface CommandStart {
  cmd: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  tag?: string;
  timeout_sec?: number;
  stdin?: boolean;
  background?: boolean;
}

function parseStart(raw: Buffer): CommandStart {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InvalidArgumentError('the first message must be JSON: {"cmd": "..."}');
  }
  const m = v as Partial<CommandStart>;
  if (!m || typeof m !== 'object') throw new InvalidArgumentError('the first message must be a JSON object');
  if (typeof m.cmd !== 'string' || !m.cmd) throw new InvalidArgumentError('cmd must be a non-empty string');
  if (m.args !== undefined && (!Array.isArray(m.args) || m.args.some((a) => typeof a !== 'string')))
    throw new InvalidArgumentError('args must be an array of strings');
  for (const k of ['cwd', 'user', 'tag'] as const) {
    if (m[k] !== undefined && typeof m[k] !== 'string') throw new InvalidArgumentError(`${k} must be a string`);
  }
  validateCommandTimeout(m.timeout_sec);
  validateEnvs(m.env);
  return m as CommandStart;
}

/** Forwards envd process events to the socket; returns when the stream ends. */
async function pump(
  ws: WebSocket,
  events: AsyncIterable<{ event?: ProcessEvent }>,
  onPid: (pid: number) => void,
  onEnd: () => void,
): Promise<void> {
  for await (const res of events) {
    const e = res.event?.event;
    if (!e) continue;
    if (e.case === 'start') {
      onPid(e.value.pid);
      sendJson(ws, { type: 'start', pid: e.value.pid });
    } else if (e.case === 'data') {
      const o = e.value.output;
      if (o.case)
        sendJson(ws, {
          type: o.case === 'stderr' ? 'stderr' : 'stdout',
          data: Buffer.from(o.value).toString('base64'),
        });
    } else if (e.case === 'end') {
      onEnd();
      sendJson(ws, { type: 'exit', exit_code: e.value.exitCode, ...(e.value.error ? { error: e.value.error } : {}) });
    }
  }
}

/** Client messages after the start: stdin, close_stdin, kill. Kept in order. */
function inputHandler(envd: CapsuleEnvd, pid: () => number, log: FastifyRequest['log']) {
  let chain: Promise<unknown> = Promise.resolve();
  return (data: RawData) => {
    let m: { type?: string; data?: string };
    try {
      m = JSON.parse(toBuffer(data).toString('utf8')) as typeof m;
    } catch {
      return;
    }
    const p = pid();
    if (!p) return;
    const process = { selector: { case: 'pid' as const, value: p } };
    const op: (() => Promise<unknown>) | undefined =
      m.type === 'stdin' && typeof m.data === 'string'
        ? () =>
            envd.process.sendInput({
              process,
              input: { input: { case: 'stdin', value: Buffer.from(m.data!, 'base64') } },
            })
        : m.type === 'close_stdin'
          ? () => envd.process.closeStdin({ process })
          : m.type === 'kill'
            ? () => envd.process.sendSignal({ process, signal: Signal.SIGKILL })
            : undefined;
    if (op) chain = chain.then(op).catch((err: unknown) => log.debug({ err }, 'process input failed'));
  };
}

export function sdkRoutes(ctx: ControlPlaneContext) {
  const envdFor = envdAccess(ctx);
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
    const loadRunning = async (req: FastifyRequest) => {
      (req as FastifyRequest & { sdkCapsule?: Capsule }).sdkCapsule = await running(req, 'attach to');
    };
    const capsuleOf = (req: FastifyRequest) => (req as FastifyRequest & { sdkCapsule?: Capsule }).sdkCapsule!;

    app.get(
      '/capsules/:id/commands',
      {
        websocket: true,
        preHandler: loadRunning,
        schema: {
          tags: ['processes'],
          summary: 'Run a command with stdin and streamed output (WebSocket)',
          params: CapsuleIdParams,
        },
      },
      (ws: WebSocket, req: FastifyRequest) => {
        const capsule = capsuleOf(req);
        const abort = new AbortController();
        let envd: CapsuleEnvd | undefined;
        let pid = 0;
        let ended = false;
        let background = false;
        let onInput: ((d: RawData) => void) | undefined;
        ws.on('close', () => {
          if (pid && !ended && !background)
            envd?.process
              .sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.SIGKILL })
              .catch(() => undefined);
          // A background command keeps running: only our stream of its output ends.
          abort.abort();
          setTimeout(() => envd?.close(), 1000).unref();
        });
        ws.on('message', (data: RawData, isBinary: boolean) => {
          if (onInput) return onInput(data);
          onInput = () => undefined;
          void (async () => {
            try {
              if (isBinary) throw new InvalidArgumentError('the first message must be JSON text');
              const m = parseStart(toBuffer(data));
              background = m.background === true;
              envd = await envdFor(capsule);
              onInput = inputHandler(envd, () => pid, req.log);
              const events = envd.process.start(
                {
                  process: {
                    ...(m.args === undefined ? { cmd: '/bin/sh', args: ['-c', m.cmd] } : { cmd: m.cmd, args: m.args }),
                    envs: m.env ?? {},
                    ...(m.cwd ? { cwd: m.cwd } : {}),
                  },
                  ...(m.tag ? { tag: m.tag } : {}),
                  stdin: m.stdin === true,
                },
                {
                  headers: userHeaders(m.user),
                  signal: abort.signal,
                  ...(m.timeout_sec ? { timeoutMs: m.timeout_sec * 1000 } : {}),
                },
              );
              await pump(
                ws,
                events,
                (p) => (pid = p),
                () => (ended = true),
              );
              ended = true;
              if (ws.readyState === ws.OPEN) ws.close(1000, 'exited');
            } catch (err) {
              if (!abort.signal.aborted) closeWithError(ws, err);
            }
          })();
        });
      },
    );

    app.get(
      '/capsules/:id/processes/:pid/connect',
      {
        websocket: true,
        preHandler: loadRunning,
        schema: {
          tags: ['processes'],
          summary: 'Stream the output of a running process (WebSocket)',
          params: ProcessParams,
        },
      },
      (ws: WebSocket, req: FastifyRequest) => {
        const capsule = capsuleOf(req);
        const pid = (req.params as { pid: number }).pid;
        const abort = new AbortController();
        let envd: CapsuleEnvd | undefined;
        const held: RawData[] = [];
        let onInput: ((d: RawData) => void) | undefined;
        ws.on('message', (d: RawData) => (onInput ? onInput(d) : held.push(d)));
        ws.on('close', () => {
          abort.abort();
          setTimeout(() => envd?.close(), 1000).unref();
        });
        void (async () => {
          try {
            envd = await envdFor(capsule);
            onInput = inputHandler(envd, () => pid, req.log);
            for (const d of held.splice(0)) onInput(d);
            const events = envd.process.connect(
              { process: { selector: { case: 'pid', value: pid } } },
              { signal: abort.signal },
            );
            await pump(
              ws,
              events,
              () => undefined,
              () => undefined,
            );
            if (ws.readyState === ws.OPEN) ws.close(1000, 'exited');
          } catch (err) {
            if (!abort.signal.aborted) closeWithError(ws, err);
          }
        })();
      },
    );

    app.post(
      '/capsules/:id/processes/:pid/stdin',
      {
        bodyLimit: STDIN_BODY_LIMIT,
        schema: {
          tags: ['processes'],
          summary: "Write to a running process's stdin (start it with stdin open) and/or close it",
          params: ProcessParams,
          body: Type.Object(
            {
              data_base64: Type.Optional(Type.String({ contentEncoding: 'base64' })),
              close: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
          response: { 204: Type.Null(), ...errors(400, 401, 404, 409) },
        },
      },
      async (req, reply) => {
        const capsule = await running(req, 'send input to processes of');
        const { pid } = req.params as { pid: number };
        const b = req.body as { data_base64?: string; close?: boolean };
        if (b.data_base64 !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(b.data_base64))
          throw new InvalidArgumentError('body/data_base64 must be base64');
        await withEnvd(capsule, async (envd) => {
          const process = { selector: { case: 'pid' as const, value: pid } };
          if (b.data_base64)
            await envd.process.sendInput({
              process,
              input: { input: { case: 'stdin', value: Buffer.from(b.data_base64, 'base64') } },
            });
          if (b.close) await envd.process.closeStdin({ process });
        });
        return reply.status(204).send(null);
      },
    );

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
        const capsule = capsuleOf(req);
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
