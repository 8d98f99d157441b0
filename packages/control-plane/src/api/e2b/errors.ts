// The E2B API's edge: {"code": <HTTP status>, "message": "..."}, which the e2b SDK reads (it
// throws SandboxNotFoundError on 404, treats 409 from pause as "already paused", and raises its
// NotEnoughSpaceError on 507). Its statuses are the native API's (api/errors.ts): one table.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { toApiError } from '../errors.js';

export function e2bErrorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const e = toApiError(err, req.routeOptions.bodyLimit);
  if (e.status >= 500) req.log.error({ err }, 'e2b request failed');
  void reply.status(e.status).send({ code: e.status, message: e.message });
}
