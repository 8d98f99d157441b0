// Typed errors carrying the server's code and message, so callers can catch what they can handle
// (a missing capsule, a bad key, a timeout) without parsing strings.

/** Every error the SDK raises for a failed API call. */
export class WrennError extends Error {
  /** HTTP status of the answer (0 when the server could not be reached). */
  readonly status: number;
  /** The server's machine-readable code, e.g. `not_found`. */
  readonly code: string;
  constructor(message: string, opts: { status?: number; code?: string; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.status = opts.status ?? 0;
    this.code = opts.code ?? 'error';
  }
}

/** The API key is missing, wrong or revoked. */
export class AuthenticationError extends WrennError {}
/** The key is valid but the action is not allowed (e.g. a capsule user may not write a path). */
export class PermissionDeniedError extends WrennError {}
/** A capsule, template, snapshot, file or process does not exist. */
export class NotFoundError extends WrennError {}
/** The capsule was destroyed (or timed out) and cannot be used any more. */
export class CapsuleGoneError extends NotFoundError {}
/** The request was malformed (a bad option, a bad path, a bad name). */
export class InvalidArgumentError extends WrennError {}
/** The operation conflicts with the current state (e.g. exec in a paused capsule). */
export class ConflictError extends WrennError {}
/** The operation did not finish in time (client timeout or server deadline). */
export class TimeoutError extends WrennError {}
/** The server could not be reached. */
export class ConnectionError extends WrennError {}
/** No host has room for another capsule now (503 `host_full`, naming what is full): retry later or free one. */
export class HostFullError extends WrennError {}

/** A command finished with a non-zero exit code (commands.run without `background`). */
export class CommandExitError extends WrennError {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly error: string | undefined;
  constructor(result: { exitCode: number; stdout: string; stderr: string; error?: string | undefined }) {
    const tail = result.stderr.trim().split('\n').slice(-3).join('\n');
    super(
      `command exited with code ${result.exitCode}${result.error ? ` (${result.error})` : ''}${tail ? `: ${tail}` : ''}`,
      {
        code: 'command_exit',
      },
    );
    this.exitCode = result.exitCode;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.error = result.error;
  }
}

/** Builds the typed error for an error answer `{"error": {"code", "message"}}`. */
export function errorFromResponse(status: number, body: unknown, fallback: string): WrennError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof e?.code === 'string' ? e.code : `http_${status}`;
  const message = typeof e?.message === 'string' && e.message ? e.message : fallback;
  const opts = { status, code };
  if (status === 401) return new AuthenticationError(message, opts);
  if (status === 403) return new PermissionDeniedError(message, opts);
  if (status === 404) {
    return /already destroyed|was destroyed|timed out/.test(message)
      ? new CapsuleGoneError(message, opts)
      : new NotFoundError(message, opts);
  }
  if (status === 400 || status === 422) return new InvalidArgumentError(message, opts);
  if (status === 408 || status === 504 || code === 'deadline_exceeded') return new TimeoutError(message, opts);
  if (status === 409) {
    return / is stopped\b/.test(message) ? new CapsuleGoneError(message, opts) : new ConflictError(message, opts);
  }
  if (status === 503 && code === 'host_full') return new HostFullError(message, opts);
  return new WrennError(message, opts);
}
