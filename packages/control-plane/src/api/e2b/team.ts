// E2B's team routes, for the team of the API key: GET /teams, /teams/{teamID}/metrics (and
// /metrics/max), the team's API keys under /api-keys, and /access-tokens. E2B takes access tokens
// (a user's) for some of these; Wrenn has no users, so the team's API key stands for them, and
// creating an access token answers 410 as E2B's own API does now (deprecated: use an API key).
import { Type } from '@sinclair/typebox';
import { NotFoundError, PermissionDeniedError } from '@wrenn/protocol';
import type { FastifyInstance } from 'fastify';
import {
  type ApiKeyInfo,
  createApiKey,
  e2bKeyOf,
  listApiKeys,
  renameApiKey,
  revokeApiKey,
} from '../../auth/api-keys.js';
import type { ControlPlaneContext } from '../../context.js';
import { apiKeyOf } from '../../hosts/admin-auth.js';
import { teamMetrics } from '../../services/team-metrics.js';
import { e2bTeam } from './auth.js';
import { metricsRange, metricsStepMs } from './metrics-range.js';
import { E2bError, errorResponses, MetricsRangeQuery } from './schemas.js';

const tags = ['e2b'];
const WEEK_MS = 7 * 24 * 3_600_000;

const TeamIdParams = Type.Object({ teamID: Type.String({ minLength: 1, maxLength: 128 }) });
const KeyIdParams = Type.Object({ apiKeyID: Type.String({ minLength: 1, maxLength: 128 }) });
const KeyName = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
const Mask = Type.Object({
  prefix: Type.String(),
  valueLength: Type.Integer(),
  maskedValuePrefix: Type.String(),
  maskedValueSuffix: Type.String(),
});
const TeamApiKey = Type.Object({
  id: Type.String(),
  name: Type.String(),
  mask: Mask,
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Null(),
  lastUsed: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const TeamMetric = Type.Object({
  timestamp: Type.String({ format: 'date-time' }),
  timestampUnix: Type.Integer(),
  concurrentSandboxes: Type.Integer(),
  sandboxStartRate: Type.Number(),
});

/** What is stored of a key ('wrn_' + its first 8 characters) as E2B's mask; no suffix is kept. */
const maskOf = (k: ApiKeyInfo) => ({
  prefix: 'wrn_',
  valueLength: 32,
  maskedValuePrefix: k.prefix.slice('wrn_'.length),
  maskedValueSuffix: '',
});
const teamApiKey = (k: ApiKeyInfo) => ({
  id: k.id,
  name: k.name,
  mask: maskOf(k),
  createdAt: k.createdAt.toISOString(),
  createdBy: null,
  lastUsed: k.lastUsedAt?.toISOString() ?? null,
});

export function teamRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.get(
    '/teams',
    {
      schema: {
        tags,
        summary: 'The team of the API key',
        response: {
          200: Type.Array(
            Type.Object({
              teamID: Type.String(),
              name: Type.String(),
              apiKey: Type.String(),
              isDefault: Type.Boolean(),
            }),
          ),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      // The key the caller sent (Wrenn keeps only hashes), so no other key is ever shown.
      return [{ teamID: team.id, name: team.name, apiKey: apiKeyOf(req) ?? '', isDefault: true }];
    },
  );

  const ownTeam = async (req: Parameters<typeof e2bTeam>[1]) => {
    const team = await e2bTeam(ctx, req);
    const asked = (req.params as { teamID: string }).teamID;
    if (asked !== team.id)
      throw new PermissionDeniedError(`You (${team.id}) are not authorized to access this team's (${asked}) metrics`);
    return team;
  };
  const series = async (req: Parameters<typeof e2bTeam>[1]) => {
    const team = await ownTeam(req);
    const now = new Date();
    const { start, end } = metricsRange(req.query as MetricsRangeQuery, {
      start: new Date(now.getTime() - WEEK_MS),
      end: now,
    });
    return teamMetrics(ctx, team.id, start, end, metricsStepMs(start.getTime(), end.getTime()));
  };

  app.get(
    '/teams/:teamID/metrics',
    {
      schema: {
        tags,
        summary: "The team's concurrent sandboxes and start rate over time (default: the last 7 days)",
        params: TeamIdParams,
        querystring: MetricsRangeQuery,
        response: { 200: Type.Array(TeamMetric), 403: E2bError, ...errorResponses },
      },
    },
    async (req) =>
      (await series(req)).map((p) => ({
        timestamp: p.timestamp.toISOString(),
        timestampUnix: Math.floor(p.timestamp.getTime() / 1000),
        concurrentSandboxes: p.concurrentSandboxes,
        sandboxStartRate: p.sandboxStartRate,
      })),
  );

  app.get(
    '/teams/:teamID/metrics/max',
    {
      schema: {
        tags,
        summary: 'The highest value of one team metric in the range',
        params: TeamIdParams,
        querystring: Type.Object({
          ...MetricsRangeQuery.properties,
          metric: Type.Union([Type.Literal('concurrent_sandboxes'), Type.Literal('sandbox_start_rate')]),
        }),
        response: {
          200: Type.Object({
            timestamp: Type.String({ format: 'date-time' }),
            timestampUnix: Type.Integer(),
            value: Type.Number(),
          }),
          403: E2bError,
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const metric = (req.query as { metric: string }).metric;
      const pick = (p: Awaited<ReturnType<typeof series>>[number]) =>
        metric === 'concurrent_sandboxes' ? p.concurrentSandboxes : p.sandboxStartRate;
      const points = await series(req);
      let best = points[0];
      for (const p of points) if (best === undefined || pick(p) > pick(best)) best = p;
      const at = best?.timestamp ?? new Date();
      return {
        timestamp: at.toISOString(),
        timestampUnix: Math.floor(at.getTime() / 1000),
        value: best ? pick(best) : 0,
      };
    },
  );

  app.get(
    '/api-keys',
    {
      schema: {
        tags,
        summary: "The team's API keys (never the keys)",
        response: { 200: Type.Array(TeamApiKey), ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      return (await listApiKeys(ctx.database.db, team.id)).filter((k) => k.revokedAt === null).map(teamApiKey);
    },
  );

  app.post(
    '/api-keys',
    {
      schema: {
        tags,
        summary: 'Create a team API key (shown only in this answer, in its e2b_ form)',
        body: KeyName,
        response: { 201: Type.Object({ ...TeamApiKey.properties, key: Type.String() }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const { key, info } = await createApiKey(ctx.database.db, {
        teamId: team.id,
        name: (req.body as { name: string }).name,
      });
      return reply.status(201).send({ ...teamApiKey(info), key: e2bKeyOf(key) });
    },
  );

  app.patch(
    '/api-keys/:apiKeyID',
    {
      schema: {
        tags,
        summary: 'Rename a team API key',
        params: KeyIdParams,
        body: KeyName,
        response: { 200: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as { apiKeyID: string }).apiKeyID;
      const k = await renameApiKey(ctx.database.db, id, team.id, (req.body as { name: string }).name);
      if (!k || k.revokedAt !== null) throw new NotFoundError(`API key ${id} not found`);
      return reply.status(200).send();
    },
  );

  app.delete(
    '/api-keys/:apiKeyID',
    {
      schema: {
        tags,
        summary: 'Delete (revoke) a team API key',
        params: KeyIdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as { apiKeyID: string }).apiKeyID;
      const before = (await listApiKeys(ctx.database.db, team.id)).find((k) => k.id === id);
      if (!before || before.revokedAt !== null) throw new NotFoundError(`API key ${id} not found`);
      await revokeApiKey(ctx.database.db, id, team.id);
      return reply.status(204).send();
    },
  );

  app.post(
    '/access-tokens',
    {
      schema: {
        tags,
        summary: 'Create an access token: gone, as on E2B (use an API key)',
        body: Type.Optional(Type.Object({ name: Type.Optional(Type.String({ maxLength: 200 })) })),
        response: { 410: E2bError, ...errorResponses },
      },
    },
    async (req, reply) => {
      await e2bTeam(ctx, req);
      return reply.status(410).send({
        code: 410,
        message: 'access tokens are deprecated (as on E2B) and Wrenn issues none: use an API key (E2B_API_KEY)',
      });
    },
  );

  app.delete(
    '/access-tokens/:accessTokenID',
    {
      schema: {
        tags,
        summary: 'Delete an access token (Wrenn issues none)',
        params: Type.Object({ accessTokenID: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req) => {
      await e2bTeam(ctx, req);
      throw new NotFoundError(
        `access token ${(req.params as { accessTokenID: string }).accessTokenID} not found: Wrenn issues no access tokens`,
      );
    },
  );
}
