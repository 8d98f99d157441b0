// POST /v1/capsules/:id/fork: N capsules with a running capsule's state (services/fork.ts); one
// entry per requested fork, the capsule or the error that kept it from starting.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ForkCapsuleBody, ForkCapsuleResult, type ForkCapsuleResultJson } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { forkCapsule } from '../../services/fork.js';
import { teamOf } from '../auth.js';
import { toApiError } from '../errors.js';
import { capsuleJsonOf } from './capsules.js';
import { CapsuleIdParams, errors } from './schemas.js';

export const forkRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/capsules/:id/fork',
      {
        schema: {
          tags: ['capsules'],
          summary: 'Fork a running capsule into new capsules',
          description:
            "Copies the capsule once and starts `count` capsules from the copy, on the source's host; the source " +
            'keeps running. On the namespace runtime a fork gets the files and starts fresh processes ' +
            '(`processes_restarted: true`); on the VM runtimes it restores the memory and processes too.',
          params: CapsuleIdParams,
          body: ForkCapsuleBody,
          response: { 201: ForkCapsuleResult, ...errors(400, 401, 404, 409, 503) },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const r = await forkCapsule(ctx, teamOf(req).id, req.params.id, {
          ...(b.count !== undefined ? { count: b.count } : {}),
          ...(b.timeout_sec !== undefined ? { timeoutSec: b.timeout_sec } : {}),
        });
        const body: ForkCapsuleResultJson = {
          source_id: r.source.id,
          processes_restarted: r.processesRestarted,
          forks: await Promise.all(
            r.forks.map(async (f) => {
              if ('capsule' in f) return { capsule: await capsuleJsonOf(ctx, f.capsule) };
              const e = toApiError(f.error);
              return { error: { status: e.status, code: e.code, message: e.message } };
            }),
          ),
        };
        return reply.status(201).send(body);
      },
    );
  };
