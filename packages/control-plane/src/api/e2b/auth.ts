// The E2B SDK sends the key as X-API-KEY (E2B_API_KEY); Authorization: Bearer works too. Checked in
// an onRequest hook, so no body of a caller without a valid key is read or parsed.
import { UnauthenticatedError } from '@wrenn/protocol';
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { authenticate } from '../../auth/api-keys.js';
import type { ControlPlaneContext } from '../../context.js';
import type { Team } from '../../db/repositories/teams.js';
import { apiKeyOf } from '../../hosts/admin-auth.js';

async function authenticateE2b(ctx: ControlPlaneContext, req: FastifyRequest): Promise<Team> {
  const key = apiKeyOf(req);
  if (!key) throw new UnauthenticatedError('missing API key: set E2B_API_KEY to a Wrenn API key (e2b_... or wrn_...)');
  const team = await authenticate(ctx.database.db, key);
  if (!team)
    throw new UnauthenticatedError(
      'invalid or revoked API key: E2B_API_KEY must be a Wrenn API key (its e2b_... form, or wrn_...)',
    );
  req.team = team;
  return team;
}

/** The onRequest hook of every E2B route. */
export const requireE2bKey =
  (ctx: ControlPlaneContext): onRequestHookHandler =>
  async (req) => {
    await authenticateE2b(ctx, req);
  };

/** The team of a request that passed requireE2bKey. */
export async function e2bTeam(ctx: ControlPlaneContext, req: FastifyRequest): Promise<Team> {
  return req.team ?? authenticateE2b(ctx, req);
}
