// The agent's Connect edge: whatever a method throws leaves as a ConnectError whose code comes from
// the domain error's kind (@wrenn/protocol's one table), so callers get invalid_argument /
// not_found / failed_precondition / resource_exhausted rather than a bare internal error.
import { toConnectError } from '@wrenn/protocol';

export { toConnectError };

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
