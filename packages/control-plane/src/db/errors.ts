// Errors repositories throw for bad input or conflicting writes; the API maps them to HTTP statuses
// through `code` (invalid_argument -> 400, unauthenticated -> 401, conflict -> 409, not_found -> 404).
export type DbErrorCode = 'invalid_argument' | 'unauthenticated' | 'conflict' | 'not_found';

export class DbError extends Error {
  constructor(
    readonly code: DbErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DbError';
  }
}

export const invalidArgument = (message: string): DbError => new DbError('invalid_argument', message);

/** True when `err` is a unique-constraint violation on either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown } | null;
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === '23505';
}
