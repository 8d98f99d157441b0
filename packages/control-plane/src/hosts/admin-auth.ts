// Admin-only routes (host tokens): the caller's API key must belong to the admin team that
// `ensureAdmin` creates on first start.

import { PermissionDeniedError } from '@wrenn/protocol';
import type { FastifyRequest } from 'fastify';
import { unauthorized } from '../api/errors.js';
import { ADMIN_TEAM_ID } from '../auth/admin.js';
import { authenticate } from '../auth/api-keys.js';
import type { ControlPlaneContext } from '../context.js';
import type { Team } from '../db/repositories/teams.js';

/** The API key of a request: X-API-Key, or Authorization: Bearer <key>. */
export function apiKeyOf(req: FastifyRequest): string | undefined {
  const h = req.headers['x-api-key'];
  const key = Array.isArray(h) ? h[0] : h;
  if (key) return key.trim();
  const auth = req.headers.authorization;
  const m = auth ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
  return m?.[1];
}

export async function requireAdmin(ctx: ControlPlaneContext, req: FastifyRequest): Promise<Team> {
  const key = apiKeyOf(req);
  if (!key) throw unauthorized();
  const team = await authenticate(ctx.database.db, key);
  if (!team) throw unauthorized('the API key is invalid or revoked');
  if (team.id !== ADMIN_TEAM_ID) {
    throw new PermissionDeniedError(
      'only the admin key may manage hosts (see <dataDir>/admin-api-key or WRENN_API_KEY)',
    );
  }
  return team;
}
