// Access token and user selection, shared by the Connect services and the HTTP routes.
// The e2b SDK names the user with `Authorization: Basic base64("<user>:")`; files and processes
// run as that user. Once /init set a token, `X-Access-Token` must match on every request.
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { EnvdState } from './state.js';
import { lookupUser, UnknownUserError, type UserInfo } from './users.js';

export function tokenMatches(state: EnvdState, given: string | null | undefined): boolean {
  if (!state.accessToken) return true;
  if (!given) return false;
  return sameBytes(Buffer.from(state.accessToken), Buffer.from(given));
}

/**
 * Constant-time comparison (every byte is looked at, no early exit; only the length shows) in
 * plain JS: node:crypto's timingSafeEqual would load node:crypto on a new capsule's first request,
 * ~10 ms on its first command.
 */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** Connect interceptor: rejects RPCs without the access token once one is set. */
export function accessTokenInterceptor(state: EnvdState): Interceptor {
  return (next) => async (req) => {
    if (!tokenMatches(state, req.header.get('x-access-token'))) {
      throw new ConnectError('missing or wrong X-Access-Token', Code.Unauthenticated);
    }
    return next(req);
  };
}

/** The user name a request asks for, or undefined when it names none. */
export function requestedUserName(authorization: string | null | undefined): string | undefined {
  if (!authorization?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
  const name = decoded.split(':')[0];
  return name || undefined;
}

/** Resolves the user for a request: explicit name, else /init's default user. Throws a Connect error. */
export function resolveUser(state: EnvdState, explicit: string | undefined): UserInfo {
  const name = explicit ?? state.defaultUser;
  try {
    return lookupUser(name, state.etcDir);
  } catch (err) {
    if (err instanceof UnknownUserError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

/** The uid/gid options for spawn: only when envd runs as root and the target differs. */
export function spawnIdentity(user: UserInfo): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  return { uid: user.uid, gid: user.gid };
}
