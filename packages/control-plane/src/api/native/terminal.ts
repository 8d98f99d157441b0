// WebSocket terminal: GET /capsules/:id/pty. Query cols, rows, tag, cmd. Binary frames carry
// terminal bytes both ways; text frames are JSON: client {type:'resize', cols, rows} |
// {type:'kill'} | {type:'input', data} (for clients that cannot send binary); server
// {type:'start', pid, tag} and {type:'exit', exit_code}. Closing the socket leaves the shell
// running: connect again with the same tag to re-attach to it. Commands have their own protocol
// (commands.ts).

import { randomBytes } from 'node:crypto';
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { ControlPlaneContext } from '../../context.js';
import { CapsuleIdParams } from './schemas.js';
import { loadRunningCapsule, socketCapsule } from './socket-capsule.js';
import { closeWithError, sendJson, toBuffer } from './ws-messages.js';

export function terminalRoutes(ctx: ControlPlaneContext) {
  const loadRunning = loadRunningCapsule(ctx);
  return async (app: FastifyInstance) => {
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
        const { capsule, agent } = socketCapsule(req);
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
