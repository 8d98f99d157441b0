// The native API's command protocol, one for every client (the SDK's commands.run, the dashboard,
// scripts), served straight from the capsule's envd:
//
// GET  /capsules/:id/commands (WebSocket), also at /capsules/:id/exec/stream: the first client
//      message is JSON {cmd, args?, env?, cwd?, user?, tag?, timeout_sec?, stdin?: bool,
//      background?: bool} (without args, cmd runs under /bin/sh -c). Server: {type:'start', pid},
//      {type:'stdout'|'stderr', data:<base64>}, {type:'exit', exit_code, error?},
//      {type:'error', error:{code,message}}. Client after start: {type:'stdin', data:<base64>},
//      {type:'close_stdin'}, {type:'kill'}. Closing the socket kills the command unless it was
//      started with background: true.
// GET  /capsules/:id/processes/:pid/connect (WebSocket): the same events and client messages for
//      a process already running; closing the socket leaves it running.
// POST /capsules/:id/processes/:pid/stdin {data_base64?, close?}

import { Type } from '@fastify/type-provider-typebox';
import { InvalidArgumentError } from '@wrenn/protocol';
import { type ProcessEvent, Signal } from '@wrenn/protocol/gen/envd/process_pb';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { ControlPlaneContext } from '../../context.js';
import { capsuleAgent, validateCommandTimeout, validateEnvs } from '../../services/capsules.js';
import { teamOf } from '../auth.js';
import { STDIN_BODY_LIMIT } from '../edge.js';
import { type CapsuleEnvd, envdAccess, userHeaders } from './envd-access.js';
import { CapsuleIdParams, errors, ProcessParams } from './schemas.js';
import { loadRunningCapsule, socketCapsule } from './socket-capsule.js';
import { closeWithError, sendJson, toBuffer } from './ws-messages.js';

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

export function commandRoutes(ctx: ControlPlaneContext) {
  const envdFor = envdAccess(ctx);
  const loadRunning = loadRunningCapsule(ctx);
  return async (app: FastifyInstance) => {
    const runCommand = (ws: WebSocket, req: FastifyRequest): void => {
      const { capsule } = socketCapsule(req);
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
    };

    for (const [path, tag, summary] of [
      ['/capsules/:id/commands', 'processes', 'Run a command with stdin and streamed output (WebSocket)'],
      [
        '/capsules/:id/exec/stream',
        'capsules',
        'Run a command with streamed output (WebSocket; the protocol of /commands)',
      ],
    ] as const) {
      app.get(
        path,
        {
          websocket: true,
          preHandler: loadRunning,
          schema: { tags: [tag], summary, params: CapsuleIdParams },
        },
        runCommand,
      );
    }

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
        const { capsule } = socketCapsule(req);
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
        const { capsule } = await capsuleAgent(
          ctx,
          teamOf(req).id,
          (req.params as { id: string }).id,
          ['running'],
          'send input to processes of',
        );
        const { pid } = req.params as { pid: number };
        const b = req.body as { data_base64?: string; close?: boolean };
        if (b.data_base64 !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(b.data_base64))
          throw new InvalidArgumentError('body/data_base64 must be base64');
        const envd = await envdFor(capsule);
        try {
          const process = { selector: { case: 'pid' as const, value: pid } };
          if (b.data_base64)
            await envd.process.sendInput({
              process,
              input: { input: { case: 'stdin', value: Buffer.from(b.data_base64, 'base64') } },
            });
          if (b.close) await envd.process.closeStdin({ process });
        } finally {
          envd.close();
        }
        return reply.status(204).send(null);
      },
    );
  };
}
