// Domain errors: what went wrong, in the terms of the platform rather than of a transport. Services
// and the agent's manager throw these; each edge (the native API's envelope, the E2B API's
// {code, message}, the agent's Connect service) maps them to its own status in one place, by
// `kind`. `code` is the finer name the native API shows (e.g. `host_full` for an `unavailable`);
// it defaults to the kind. No HTTP or RPC library is imported here, so every package can use it.

export const DOMAIN_ERROR_KINDS = [
  'invalid_argument',
  'not_found',
  'already_exists',
  'conflict',
  'failed_precondition',
  'permission_denied',
  'unauthenticated',
  'resource_exhausted',
  'unavailable',
  'deadline_exceeded',
  'internal',
] as const;

export type DomainErrorKind = (typeof DOMAIN_ERROR_KINDS)[number];

export interface DomainErrorOptions extends ErrorOptions {
  /** A finer machine-readable name than the kind (shown as the native API's `error.code`). */
  code?: string;
}

export class DomainError extends Error {
  readonly code: string;
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    opts: DomainErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code ?? kind;
  }
}

/** Makes the class of one kind: `new NotFoundError(message, {code?, cause?})`. */
const kindClass = (kind: DomainErrorKind) =>
  class extends DomainError {
    constructor(message: string, opts?: DomainErrorOptions) {
      super(kind, message, opts);
    }
  };

/** The request itself is wrong (a field out of range, a malformed name); retrying it unchanged fails again. */
export class InvalidArgumentError extends kindClass('invalid_argument') {}
/** The thing named does not exist (or belongs to someone else, which looks the same). */
export class NotFoundError extends kindClass('not_found') {}
/** Creating something whose name is taken. */
export class AlreadyExistsError extends kindClass('already_exists') {}
/** The write lost to another one (a state changed meanwhile, a name in use); fetch and decide again. */
export class ConflictError extends kindClass('conflict') {}
/** The thing is not in a state that allows this (a paused capsule asked to exec, a template still in use). */
export class FailedPreconditionError extends kindClass('failed_precondition') {}
export class PermissionDeniedError extends kindClass('permission_denied') {}
export class UnauthenticatedError extends kindClass('unauthenticated') {}
/** A limit of the thing acted on is reached (a capsule's disk is full, a host has no room). */
export class ResourceExhaustedError extends kindClass('resource_exhausted') {}
/** Not possible now, nothing wrong with the request: retry later (or elsewhere). */
export class UnavailableError extends kindClass('unavailable') {}
/** No host of the deployment has room for another capsule: `unavailable` with the code `host_full`. */
export class HostFullError extends UnavailableError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super(message, { ...opts, code: 'host_full' });
  }
}
export class DeadlineExceededError extends kindClass('deadline_exceeded') {}
/** Our fault; `code` may say which step failed (e.g. `capsule_start_failed`). */
export class InternalError extends kindClass('internal') {}

const CLASS_OF: Record<DomainErrorKind, new (message: string, opts?: DomainErrorOptions) => DomainError> = {
  invalid_argument: InvalidArgumentError,
  not_found: NotFoundError,
  already_exists: AlreadyExistsError,
  conflict: ConflictError,
  failed_precondition: FailedPreconditionError,
  permission_denied: PermissionDeniedError,
  unauthenticated: UnauthenticatedError,
  resource_exhausted: ResourceExhaustedError,
  unavailable: UnavailableError,
  deadline_exceeded: DeadlineExceededError,
  internal: InternalError,
};

/** The error of `kind`, as an instance of that kind's class (so `instanceof NotFoundError` holds). */
export const domainError = (kind: DomainErrorKind, message: string, opts?: DomainErrorOptions): DomainError =>
  new CLASS_OF[kind](message, opts);

export const isDomainError = (err: unknown): err is DomainError => err instanceof DomainError;
