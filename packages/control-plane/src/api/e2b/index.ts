// E2B-compatible API: the routes the official `e2b` SDK calls (E2B_API_URL pointed here, with a
// Wrenn key as E2B_API_KEY). Envd traffic does not come through these routes: with
// E2B_SANDBOX_URL pointed here too, the SDK sends it with E2b-Sandbox-Id/-Port headers and the
// sandbox proxy carries it to the capsule before Fastify sees it.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ControlPlaneContext } from '../../context.js';
import { e2bErrorHandler } from './errors.js';
import { sandboxRoutes } from './sandboxes.js';
import { templateRoutes } from './templates.js';
import { E2bError } from './schemas.js';

export const e2bApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  // Scoped to this plugin: the native API keeps its own error shape.
  app.setErrorHandler(e2bErrorHandler);

  app.get(
    '/health',
    {
      schema: {
        tags: ['e2b'],
        summary: 'Ready to create sandboxes?',
        security: [],
        response: { 200: Type.Object({ status: Type.String() }), 503: E2bError },
      },
    },
    async (_req, reply) => {
      if (!ctx.readiness.ready) return reply.status(503).send({ code: 503, message: `not ready: ${ctx.readiness.reason}` });
      return { status: 'ok' };
    },
  );

  sandboxRoutes(app, ctx);
  templateRoutes(app, ctx);
};
