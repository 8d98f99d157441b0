// One error shape for every API: {"error": {"code": "...", "message": "..."}} with the right status.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Code, ConnectError } from '@connectrpc/connect';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);
export const badRequest = (message: string) => new ApiError(400, 'invalid_argument', message);
export const conflict = (message: string) => new ApiError(409, 'conflict', message);
export const unauthorized = (message = 'missing or invalid API key: send it as X-API-Key or Authorization: Bearer') =>
  new ApiError(401, 'unauthenticated', message);

const CONNECT_STATUS: Partial<Record<Code, [number, string]>> = {
  [Code.InvalidArgument]: [400, 'invalid_argument'],
  [Code.NotFound]: [404, 'not_found'],
  [Code.AlreadyExists]: [409, 'already_exists'],
  [Code.FailedPrecondition]: [409, 'failed_precondition'],
  [Code.PermissionDenied]: [403, 'permission_denied'],
  [Code.Unauthenticated]: [401, 'unauthenticated'],
  [Code.ResourceExhausted]: [507, 'resource_exhausted'],
  [Code.DeadlineExceeded]: [504, 'deadline_exceeded'],
  [Code.Unavailable]: [503, 'unavailable'],
};

/** Converts an error from anywhere (validation, agent RPC, our own) into the API's error shape. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ConnectError) {
    const [status, code] = CONNECT_STATUS[err.code] ?? [500, 'internal'];
    return new ApiError(status, code, err.rawMessage);
  }
  const fe = err as FastifyError;
  if (fe?.validation) return new ApiError(400, 'invalid_argument', fe.message);
  if (fe?.statusCode && fe.statusCode < 500) return new ApiError(fe.statusCode, fe.code?.toLowerCase() ?? 'bad_request', fe.message);
  return new ApiError(500, 'internal', err instanceof Error ? err.message : String(err));
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const e = toApiError(err);
  if (e.status >= 500) req.log.error({ err }, 'request failed');
  void reply.status(e.status).send({ error: { code: e.code, message: e.message } });
}
