// The E2B SDK sends the key as X-API-KEY (E2B_API_KEY); Authorization: Bearer works too.
import type { FastifyRequest } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { ApiError } from '../errors.js';
import { authenticate } from '../../auth/api-keys.js';
import type { Team } from '../../db/repositories/teams.js';
import { apiKeyOf } from '../../hosts/admin-auth.js';

export async function e2bTeam(ctx: ControlPlaneContext, req: FastifyRequest): Promise<Team> {
  const key = apiKeyOf(req);
  if (!key) throw new ApiError(401, 'unauthenticated', 'missing API key: set E2B_API_KEY to a Wrenn API key (wrn_...)');
  const team = await authenticate(ctx.database.db, key);
  if (!team) throw new ApiError(401, 'unauthenticated', 'invalid or revoked API key: E2B_API_KEY must be a Wrenn API key (wrn_...)');
  return team;
}
