// One error shape for every API: {"error": {"code": "...", "message": "..."}} with the right status.

import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

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

/** Fastify's own client errors, by their codes, as ours. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_MAX_PARAM_LENGTH: 'uri_too_long',
  FST_ERR_BAD_URL: 'invalid_argument',
};

/**
 * Converts an error from anywhere (validation, agent RPC, our own) into the API's error shape;
 * `bodyLimit` (the route's) names the limit a too large body broke.
 */
export function toApiError(err: unknown, bodyLimit?: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ConnectError) {
    const [status, code] = CONNECT_STATUS[err.code] ?? [500, 'internal'];
    return new ApiError(status, code, err.rawMessage);
  }
  const fe = err as FastifyError;
  if (fe?.validation) return new ApiError(400, 'invalid_argument', fe.message);
  if (fe?.code === 'FST_ERR_CTP_BODY_TOO_LARGE' && bodyLimit !== undefined) {
    return new ApiError(
      413,
      'payload_too_large',
      `the request body is larger than this route takes (${bodyLimit} bytes)`,
    );
  }
  if (fe?.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return new ApiError(
      414,
      'uri_too_long',
      'a path parameter is longer than 100 characters: no id or name is that long',
    );
  }
  if (fe?.statusCode && fe.statusCode < 500) {
    const code =
      (fe.code && FASTIFY_CODES[fe.code]) ??
      (fe.statusCode === 400 ? 'invalid_argument' : (fe.code?.toLowerCase() ?? 'bad_request'));
    return new ApiError(fe.statusCode, code, fe.message);
  }
  return new ApiError(500, 'internal', err instanceof Error ? err.message : String(err));
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const e = toApiError(err, req.routeOptions.bodyLimit);
  if (e.status >= 500) req.log.error({ err }, 'request failed');
  void reply.status(e.status).send({ error: { code: e.code, message: e.message } });
}
