// Errors repositories throw for bad input or conflicting writes: domain errors (@wrenn/protocol)
// whose kind is the code, so each API maps them like any other (invalid_argument -> 400,
// unauthenticated -> 401, conflict -> 409, not_found -> 404) without a step of its own.
import { DomainError } from '@wrenn/protocol';

export type DbErrorCode = 'invalid_argument' | 'unauthenticated' | 'conflict' | 'not_found';

export class DbError extends DomainError {
  declare readonly kind: DbErrorCode;
  constructor(code: DbErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'DbError';
  }
}

export const invalidArgument = (message: string): DbError => new DbError('invalid_argument', message);

/** True when `err` is a unique-constraint violation on either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown } | null;
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === '23505';
}
