// The native API's edge: every failure leaves as {"error": {"code": "...", "message": "..."}} with
// its status. Domain errors (what services throw) map by kind through NATIVE_STATUS, ConnectErrors
// (envd's, or an agent's that no client mapped) first become domain errors by their code; ApiError
// is only for what the HTTP layer itself refuses (a slow body, a too large one).
import { ConnectError } from '@connectrpc/connect';
import { DomainError, type DomainErrorKind, fromConnectError, UnauthenticatedError } from '@wrenn/protocol';
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

/** The native API's status of each domain error kind (the envelope's code is the error's `code`). */
export const NATIVE_STATUS: Record<DomainErrorKind, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  failed_precondition: 409,
  internal: 500,
  unavailable: 503,
  deadline_exceeded: 504,
  // A capsule's disk (or quota) is full: Insufficient Storage.
  resource_exhausted: 507,
};

export const unauthorized = (message = 'missing or invalid API key: send it as X-API-Key or Authorization: Bearer') =>
  new UnauthenticatedError(message);

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
  const domain = err instanceof ConnectError ? fromConnectError(err) : err;
  if (domain instanceof DomainError) return new ApiError(NATIVE_STATUS[domain.kind], domain.code, domain.message);
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
