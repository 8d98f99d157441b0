// API key authentication: `X-API-Key: wrn_...` or `Authorization: Bearer wrn_...` resolves to a
// team. WebSocket upgrades may also pass `?api_key=` because browsers cannot set headers on them.
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { authenticate } from '../auth/api-keys.js';
import type { ControlPlaneContext } from '../context.js';
import type { Team } from '../db/repositories/teams.js';
import { unauthorized } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The team of the API key the request carried (set by the auth hook). */
    team?: Team;
  }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const isUpgrade = (req: FastifyRequest): boolean => (header(req, 'upgrade') ?? '').toLowerCase() === 'websocket';

/** The API key a request carries, if any (not yet checked). */
export function apiKeyOf(req: FastifyRequest): string | undefined {
  const x = header(req, 'x-api-key')?.trim();
  if (x) return x;
  const auth = header(req, 'authorization')?.trim();
  if (auth) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    if (m) return m[1];
  }
  if (isUpgrade(req)) {
    const q = (req.query as Record<string, unknown> | undefined)?.api_key;
    if (typeof q === 'string' && q) return q;
  }
  return undefined;
}

/** Resolves the request's team, or throws 401 saying how to authenticate. */
export async function authenticateRequest(ctx: ControlPlaneContext, req: FastifyRequest): Promise<Team> {
  if (req.team) return req.team;
  const key = apiKeyOf(req);
  if (!key) throw unauthorized();
  const team = await authenticate(ctx.database.db, key);
  if (!team)
    throw unauthorized(
      'the API key is not valid (unknown, revoked or malformed): create one with `wrenn keys create` or POST /v1/api-keys',
    );
  req.team = team;
  return team;
}

/** An onRequest hook that admits only requests with a valid API key. */
export function requireApiKey(ctx: ControlPlaneContext): onRequestHookHandler {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    await authenticateRequest(ctx, req);
  };
}

/** The authenticated team of a request that passed requireApiKey. */
export function teamOf(req: FastifyRequest): Team {
  if (!req.team) throw unauthorized();
  return req.team;
}
