// WebSocket routes: streamed exec and terminals. The capsule is looked up (team-scoped, running)
// before the upgrade, so a wrong id or state is an ordinary HTTP 404/409 the client can read.
//
// exec/stream: the first client message is JSON {cmd, args?, env?, cwd?, user?, timeout_sec?};
// the server sends JSON {type:'start', pid}, {type:'stdout'|'stderr', data:<base64>},
// {type:'exit', exit_code, error?} and closes. A client message {type:'kill'} (or closing the
// socket) kills the process.
//
// pty: query cols, rows, tag. Binary frames carry terminal bytes both ways; text frames are JSON:
// client {type:'resize', cols, rows} | {type:'kill'}; server {type:'start', pid, tag} and
// {type:'exit', exit_code}. Closing the socket leaves the shell running: connect again with the
// same tag to re-attach to it.

import { randomBytes } from 'node:crypto';
import { Type } from '@fastify/type-provider-typebox';
import { InvalidArgumentError } from '@wrenn/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { AgentClient } from '../../agents/pool.js';
import type { ControlPlaneContext } from '../../context.js';
import { type Capsule, capsuleAgent, validateCommandTimeout, validateEnvs } from '../../services/capsules.js';
import { teamOf } from '../auth.js';

import { CapsuleIdParams } from './schemas.js';
import { closeWithError, sendJson, toBuffer } from './ws-messages.js';

declare module 'fastify' {
  interface FastifyRequest {
    capsuleAgent?: { capsule: Capsule; agent: AgentClient };
  }
}

interface ExecStart {
  cmd: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeout_sec?: number;
}

function parseExecStart(raw: Buffer): ExecStart {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InvalidArgumentError('the first message must be JSON: {"cmd": "...", "args": [...]}');
  }
  const m = v as Partial<ExecStart>;
  const bad = (m: string) => new InvalidArgumentError(m);
  if (!m || typeof m !== 'object') throw bad('the first message must be a JSON object');
  if (typeof m.cmd !== 'string' || !m.cmd) throw bad('cmd must be a non-empty string');
  if (m.args !== undefined && (!Array.isArray(m.args) || m.args.some((a) => typeof a !== 'string')))
    throw bad('args must be an array of strings');
  if (m.cwd !== undefined && typeof m.cwd !== 'string') throw bad('cwd must be a string');
  if (m.user !== undefined && typeof m.user !== 'string') throw bad('user must be a string');
  validateCommandTimeout(m.timeout_sec);
  validateEnvs(m.env);
  return m as ExecStart;
}

export function streamRoutes(ctx: ControlPlaneContext) {
  return async (app: FastifyInstance) => {
    const loadRunning = async (req: FastifyRequest) => {
      const { id } = req.params as { id: string };
      req.capsuleAgent = await capsuleAgent(ctx, teamOf(req).id, id, ['running'], 'attach to');
    };

    app.get(
      '/capsules/:id/exec/stream',
      {
        websocket: true,
        preHandler: loadRunning,
        schema: {
          tags: ['capsules'],
          summary: 'Run a command with streamed output (WebSocket)',
          params: CapsuleIdParams,
        },
      },
      (ws: WebSocket, req: FastifyRequest) => {
        const { capsule, agent } = req.capsuleAgent!;
        const abort = new AbortController();
        let pid = 0;
        let started = false;
        let ended = false;
        const kill = () => {
          if (pid && !ended)
            agent
              .killProcess({ capsuleId: capsule.id, process: { selector: { case: 'pid', value: pid } }, signal: 9 })
              .catch(() => undefined);
        };
        ws.on('close', () => {
          kill();
          abort.abort();
        });
        ws.on('message', (data: RawData, isBinary: boolean) => {
          if (started) {
            try {
              const m = JSON.parse(toBuffer(data).toString('utf8')) as { type?: string };
              if (m.type === 'kill') kill();
            } catch {
              // only {type:'kill'} is understood after the start message
            }
            return;
          }
          started = true;
          void (async () => {
            try {
              if (isBinary) throw new InvalidArgumentError('the first message must be JSON text');
              const m = parseExecStart(toBuffer(data));
              const stream = agent.execStream(
                {
                  capsuleId: capsule.id,
                  ...(m.args === undefined ? { cmd: '/bin/sh', args: ['-c', m.cmd] } : { cmd: m.cmd, args: m.args }),
                  envs: m.env ?? {},
                  cwd: m.cwd ?? '',
                  user: m.user ?? '',
                  timeoutSec: m.timeout_sec ?? 0,
                },
                { signal: abort.signal },
              );
              for await (const ev of stream) {
                const e = ev.event;
                if (e.case === 'startPid') {
                  pid = e.value;
                  sendJson(ws, { type: 'start', pid });
                } else if (e.case === 'stdout' || e.case === 'stderr' || e.case === 'pty') {
                  sendJson(ws, {
                    type: e.case === 'stderr' ? 'stderr' : 'stdout',
                    data: Buffer.from(e.value).toString('base64'),
                  });
                } else if (e.case === 'exit') {
                  ended = true;
                  sendJson(ws, {
                    type: 'exit',
                    exit_code: e.value.exitCode,
                    ...(e.value.error ? { error: e.value.error } : {}),
                  });
                }
              }
              ended = true;
              if (ws.readyState === ws.OPEN) ws.close(1000, 'exited');
            } catch (err) {
              ended = true;
              if (!abort.signal.aborted) closeWithError(ws, err);
            }
          })();
        });
      },
    );

    const PtyQuery = Type.Object(
      {
        cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        tag: Type.Optional(
          Type.String({
            pattern: '^[A-Za-z0-9._-]{1,64}$',
            description: 'Name of the terminal; connect again with it to re-attach',
          }),
        ),
        cmd: Type.Optional(Type.String({ description: 'Program instead of the login shell' })),
        api_key: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    );

    app.get(
      '/capsules/:id/pty',
      {
        websocket: true,
        preHandler: loadRunning,
        schema: {
          tags: ['capsules'],
          summary: 'Interactive terminal (WebSocket)',
          params: CapsuleIdParams,
          querystring: PtyQuery,
        },
      },
      (ws: WebSocket, req: FastifyRequest) => {
        const { capsule, agent } = req.capsuleAgent!;
        const q = req.query as { cols?: number; rows?: number; tag?: string; cmd?: string };
        const tag = q.tag ?? `pty-${randomBytes(6).toString('hex')}`;
        const abort = new AbortController();
        let ready = false;
        // Input typed before the terminal exists is held until it does.
        const pending: Array<() => Promise<unknown>> = [];
        // Keeps input and resizes in order.
        let chain: Promise<unknown> = Promise.resolve();
        const run = (op: () => Promise<unknown>) => {
          if (!ready) {
            pending.push(op);
            return;
          }
          chain = chain.then(op).catch((err: unknown) => req.log.debug({ err }, 'pty input failed'));
        };
        ws.on('close', () => abort.abort());
        ws.on('message', (data: RawData, isBinary: boolean) => {
          const buf = toBuffer(data);
          if (isBinary) {
            run(() => agent.ptyInput({ capsuleId: capsule.id, tag, data: buf }));
            return;
          }
          let m: { type?: string; cols?: number; rows?: number };
          try {
            m = JSON.parse(buf.toString('utf8')) as typeof m;
          } catch {
            sendJson(ws, {
              type: 'error',
              error: {
                code: 'invalid_argument',
                message:
                  'text frames must be JSON ({"type":"resize","cols":80,"rows":24}); send terminal input as binary frames',
              },
            });
            return;
          }
          if (m.type === 'resize') {
            const cols = Number(m.cols);
            const rows = Number(m.rows);
            if (
              !Number.isInteger(cols) ||
              !Number.isInteger(rows) ||
              cols < 1 ||
              rows < 1 ||
              cols > 1000 ||
              rows > 1000
            ) {
              sendJson(ws, {
                type: 'error',
                error: { code: 'invalid_argument', message: 'resize needs whole-number cols and rows from 1 to 1000' },
              });
              return;
            }
            run(() => agent.ptyResize({ capsuleId: capsule.id, tag, cols, rows }));
          } else if (m.type === 'kill') {
            run(() => agent.ptyKill({ capsuleId: capsule.id, tag }));
          } else if (m.type === 'input' && typeof (m as { data?: unknown }).data === 'string') {
            // Convenience for clients that cannot send binary frames.
            const text = (m as { data: string }).data;
            run(() => agent.ptyInput({ capsuleId: capsule.id, tag, data: Buffer.from(text, 'utf8') }));
          }
        });
        void (async () => {
          try {
            const stream = agent.ptyAttach(
              { capsuleId: capsule.id, tag, cols: q.cols ?? 80, rows: q.rows ?? 24, ...(q.cmd ? { cmd: q.cmd } : {}) },
              { signal: abort.signal },
            );
            for await (const ev of stream) {
              const e = ev.event;
              if (e.case === 'pid') {
                sendJson(ws, { type: 'start', pid: e.value, tag });
                ready = true;
                for (const op of pending.splice(0)) run(op);
              } else if (e.case === 'data') {
                if (ws.readyState === ws.OPEN) ws.send(e.value, { binary: true });
              } else if (e.case === 'exit') {
                sendJson(ws, {
                  type: 'exit',
                  exit_code: e.value.exitCode,
                  ...(e.value.error ? { error: e.value.error } : {}),
                });
              }
            }
            if (ws.readyState === ws.OPEN) ws.close(1000, 'terminal ended');
          } catch (err) {
            if (!abort.signal.aborted) closeWithError(ws, err);
          }
        })();
      },
    );
  };
}
