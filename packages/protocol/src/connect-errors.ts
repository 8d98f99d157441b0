// The Connect edge of the domain errors, both ways and from one table: the agent's service turns
// what its manager throws into Connect codes, and the control plane's agent client turns the codes
// back into domain errors, so neither side ever reads an error's message to tell errors apart.
import { Code, ConnectError } from '@connectrpc/connect';
import { DomainError, type DomainErrorKind, domainError } from './errors.js';

export const CONNECT_CODE: Record<DomainErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  conflict: Code.Aborted,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  internal: Code.Internal,
};

/** Connect codes no domain kind maps to (Canceled, Unknown, Unimplemented, OutOfRange, DataLoss) read as these. */
const OTHER_CODES: Partial<Record<Code, DomainErrorKind>> = {
  [Code.OutOfRange]: 'invalid_argument',
};

const KIND_OF = new Map<Code, DomainErrorKind>(
  (Object.entries(CONNECT_CODE) as [DomainErrorKind, Code][]).map(([kind, code]) => [code, kind]),
);

/** A domain error (or a ConnectError, passed through) as a ConnectError; anything else is internal. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof DomainError)
    return new ConnectError(err.message, CONNECT_CODE[err.kind], undefined, undefined, err);
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(message, Code.Internal, undefined, undefined, err);
}

/** A ConnectError as the domain error of its code (the message is the sender's, without the "[code]" prefix). */
export function fromConnectError(err: ConnectError): DomainError {
  const kind = KIND_OF.get(err.code) ?? OTHER_CODES[err.code] ?? 'internal';
  return domainError(kind, err.rawMessage, { cause: err });
}

/** Domain errors as they are; ConnectErrors through fromConnectError; anything else unchanged. */
export function asDomainError(err: unknown): unknown {
  return err instanceof ConnectError ? fromConnectError(err) : err;
}

/** An error's message for people: a ConnectError's without its "[code]" prefix. */
export const messageOf = (err: unknown): string =>
  err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
