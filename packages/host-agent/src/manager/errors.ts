// Errors the manager raises, as domain errors of @wrenn/protocol: the Connect service maps each by
// its kind (service/errors.ts), so the names here only add the wording.
import { FailedPreconditionError, NotFoundError } from '@wrenn/protocol';

export { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError } from '@wrenn/protocol';

export class CapsuleNotFoundError extends NotFoundError {
  constructor(id: string) {
    super(`capsule ${id} not found on this host`);
  }
}
export class TemplateNotFoundError extends NotFoundError {
  constructor(name: string) {
    super(`template "${name}" not found; list templates to see what exists`);
  }
}
/** A template that capsules or other templates still depend on, or a built-in one. */
export class TemplateInUseError extends FailedPreconditionError {}
