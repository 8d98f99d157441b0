// Maps manager and envd errors to Connect codes, so callers get invalid_argument / not_found /
// failed_precondition rather than a bare internal error.
import { Code, ConnectError } from '@connectrpc/connect';
import {
  AlreadyExistsError,
  CapsuleNotFoundError,
  InvalidArgumentError,
  TemplateInUseError,
  TemplateNotFoundError,
} from '../manager/errors.js';
import { IllegalStateError } from '../manager/state-machine.js';
import { HostCapacityError } from '../runtimes/capacity-error.js';

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof CapsuleNotFoundError || err instanceof TemplateNotFoundError)
    return new ConnectError(message, Code.NotFound);
  if (err instanceof InvalidArgumentError) return new ConnectError(message, Code.InvalidArgument);
  if (err instanceof IllegalStateError || err instanceof TemplateInUseError)
    return new ConnectError(message, Code.FailedPrecondition);
  if (err instanceof AlreadyExistsError) return new ConnectError(message, Code.AlreadyExists);
  if (err instanceof HostCapacityError) return new ConnectError(message, Code.ResourceExhausted);
  return new ConnectError(message, Code.Internal);
}

/** Wraps every method of a service implementation so thrown errors become Connect errors. */
export function withErrorMapping<T extends object>(impl: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl)) {
    if (typeof fn !== 'function') continue;
    const isGenerator = fn.constructor?.name === 'AsyncGeneratorFunction';
    out[name] = isGenerator
      ? async function* (this: unknown, ...args: unknown[]) {
          try {
            yield* (fn as (...a: unknown[]) => AsyncGenerator)(...args);
          } catch (err) {
            throw toConnectError(err);
          }
        }
      : async (...args: unknown[]) => {
          try {
            return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
          } catch (err) {
            throw toConnectError(err);
          }
        };
  }
  return out as T;
}
