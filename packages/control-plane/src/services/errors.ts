// Services throw ApiError only, so both APIs map every failure the same way: repository
// validation errors (DbError) become 400/404/409 here instead of a bare 500 later.
import { ApiError, toApiError } from '../api/errors.js';
import { DbError } from '../db/errors.js';

const DB_STATUS: Record<DbError['code'], number> = {
  invalid_argument: 400,
  not_found: 404,
  conflict: 409,
  unauthenticated: 401,
};

export function toServiceError(err: unknown, bodyLimit?: number): ApiError {
  if (err instanceof DbError) return new ApiError(DB_STATUS[err.code], err.code, err.message);
  return toApiError(err, bodyLimit);
}

/** Runs `fn`, converting whatever it throws into an ApiError. */
export async function mapErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toServiceError(err);
  }
}
