// E2B's POST /sandboxes/{sandboxID}/fork, as the e2b SDK's Sandbox.fork() calls it: body
// {count, timeout (seconds)}, answer 201 with one {sandbox} or {error: {code, message}} per fork.
// An unknown or killed source is 404, a paused one 409 (E2B's shape, from the error handler).
import { Type } from '@sinclair/typebox';
import { FORK_DEFAULTS, forkRequestProblem, InvalidArgumentError } from '@wrenn/protocol';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { forkCapsule } from '../../services/fork.js';
import { toApiError } from '../errors.js';
import { e2bTeam } from './auth.js';
import { toSandbox } from './mapping.js';
import { visibleCapsule } from './sandboxes.js';
import { E2bError, errorResponses, Sandbox, SandboxIdParams } from './schemas.js';

const ForkBody = Type.Object({
  count: Type.Optional(Type.Integer({ description: `Forks to create (default ${FORK_DEFAULTS.count})` })),
  timeout: Type.Optional(
    Type.Integer({ description: `Seconds to live of each fork (default ${FORK_DEFAULTS.e2bTimeoutSec})` }),
  ),
});
type ForkBody = { count?: number; timeout?: number };

const ForkResult = Type.Object({ sandbox: Type.Optional(Sandbox), error: Type.Optional(E2bError) });

export function forkRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.post(
    '/sandboxes/:sandboxID/fork',
    {
      schema: {
        tags: ['e2b'],
        summary: 'Fork a sandbox',
        description:
          'Copies the running sandbox once and starts `count` sandboxes from the copy; the source keeps running. ' +
          "Namespace runtime: the forks get the source's files and start fresh processes. VM runtimes: memory too.",
        params: SandboxIdParams,
        body: Type.Optional(ForkBody),
        response: { 201: Type.Array(ForkResult), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      const body = (req.body ?? {}) as ForkBody;
      const input = {
        count: body.count ?? FORK_DEFAULTS.count,
        timeoutSec: body.timeout ?? FORK_DEFAULTS.e2bTimeoutSec,
      };
      const problem = forkRequestProblem(input, 'timeout');
      if (problem) throw new InvalidArgumentError(problem);
      await visibleCapsule(ctx, team.id, id);
      const r = await forkCapsule(ctx, team.id, id, input);
      return reply.status(201).send(
        r.forks.map((f) => {
          if ('capsule' in f) return { sandbox: toSandbox(ctx, f.capsule) };
          const e = toApiError(f.error);
          return { error: { code: e.status, message: e.message } };
        }),
      );
    },
  );
}
