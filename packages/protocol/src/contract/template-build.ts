// The template build request's rules that no JSON schema can say: build arguments (Dockerfile
// ARG values given with --build-arg). Returns the first problem as a sentence naming the field.
import { ENV_NAME_RE } from './rules.js';

export const TEMPLATE_BUILD_LIMITS = {
  /** Build arguments in one request. */
  maxBuildArgs: 64,
  /** All build argument names and values together, as JSON (they reach RUN steps as environment). */
  maxBuildArgBytes: 64 * 1024,
} as const;

/** `build_args`: an object of ARG name -> value (names as shell variables, no NUL bytes). */
export function buildArgsProblem(args: unknown, field = 'build_args'): string | undefined {
  if (args === undefined || args === null) return undefined;
  if (typeof args !== 'object' || Array.isArray(args)) return `${field} must be an object of ARG name -> string value`;
  const entries = Object.entries(args);
  if (entries.length > TEMPLATE_BUILD_LIMITS.maxBuildArgs)
    return `${field} may hold at most ${TEMPLATE_BUILD_LIMITS.maxBuildArgs} arguments, got ${entries.length}`;
  for (const [k, v] of entries) {
    if (!ENV_NAME_RE.test(k))
      return `${field} key '${k.slice(0, 60)}' is not a valid ARG name (letters, digits, _; not starting with a digit)`;
    if (typeof v !== 'string') return `${field}.${k} must be a string, got ${typeof v}`;
    if (v.includes('\0')) return `${field}.${k} contains a NUL byte`;
  }
  const bytes = new TextEncoder().encode(JSON.stringify(args)).length;
  if (bytes > TEMPLATE_BUILD_LIMITS.maxBuildArgBytes)
    return `${field} takes at most ${TEMPLATE_BUILD_LIMITS.maxBuildArgBytes} bytes (names and values as JSON), got ${bytes}`;
  return undefined;
}
