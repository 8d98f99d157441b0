// Errors the manager raises; the Connect service maps each to its code.
export class CapsuleNotFoundError extends Error {
  constructor(id: string) {
    super(`capsule ${id} not found on this host`);
  }
}
export class TemplateNotFoundError extends Error {
  constructor(name: string) {
    super(`template "${name}" not found; list templates to see what exists`);
  }
}
export class InvalidArgumentError extends Error {}
export class AlreadyExistsError extends Error {}
/** A template that capsules or other templates still depend on. */
export class TemplateInUseError extends Error {}
