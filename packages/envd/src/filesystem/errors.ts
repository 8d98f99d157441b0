// Maps Node's filesystem errors to Connect codes with messages that name the path.
import { Code, ConnectError } from '@connectrpc/connect';

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

const CODES: Record<string, Code> = {
  ENOENT: Code.NotFound,
  EACCES: Code.PermissionDenied,
  EPERM: Code.PermissionDenied,
  EROFS: Code.PermissionDenied,
  EEXIST: Code.AlreadyExists,
  ENOTDIR: Code.InvalidArgument,
  EISDIR: Code.InvalidArgument,
  EINVAL: Code.InvalidArgument,
  ENAMETOOLONG: Code.InvalidArgument,
  ENOTEMPTY: Code.FailedPrecondition,
  ELOOP: Code.FailedPrecondition,
  EXDEV: Code.FailedPrecondition,
  EBUSY: Code.FailedPrecondition,
  ENOSPC: Code.ResourceExhausted,
  EDQUOT: Code.ResourceExhausted,
};

/**
 * Wraps an fs error as a ConnectError ("<what>: <reason>"); ConnectErrors pass through. With the
 * requesting user's name, a permission error says who was refused.
 */
export function toConnectError(err: unknown, what: string, userName?: string): ConnectError {
  if (err instanceof ConnectError) return err;
  const code = CODES[errnoCode(err) ?? ''] ?? Code.Internal;
  const reason = err instanceof Error ? err.message : String(err);
  if (code === Code.PermissionDenied && userName !== undefined) {
    return new ConnectError(`permission denied: user "${userName}" may not ${what} (${reason})`, code);
  }
  return new ConnectError(`${what}: ${reason}`, code);
}
