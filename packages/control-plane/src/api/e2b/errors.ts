// The E2B API's error shape, {"code": <HTTP status>, "message": "..."}, which the e2b SDK reads
// (it also throws SandboxNotFoundError on 404 and treats 409 from pause as "already paused").
import type { FastifyReply, FastifyRequest } from 'fastify';
import { toServiceError } from '../../services/errors.js';

export function e2bErrorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const e = toServiceError(err, req.routeOptions.bodyLimit);
  if (e.status >= 500) req.log.error({ err }, 'e2b request failed');
  void reply.status(e.status).send({ code: e.status, message: e.message });
}
