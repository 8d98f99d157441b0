// Host routes (a Fastify plugin, registered by server.ts): admins create one-time registration
// tokens; a host agent spends one to register its address and capacity.
//   POST /v1/hosts/tokens    (admin key)  {ttl_sec?}                                   -> 201 {id, token, expires_at}
//   POST /v1/hosts/register  (the token)  {token, address, agent_secret, runtimes?, cpu_count?, memory_mb?, host_id?} -> 201 {host_id}
//   POST /v1/hosts/:id/drain   (admin key)  -> 200 host: no new capsules go there, its own stay
//   POST /v1/hosts/:id/undrain (admin key)  -> 200 host: takes new capsules again
// Registration first asks the agent at `address` for GetHostInfo, presenting `agent_secret`, so an
// address the control plane cannot reach, or a secret that agent does not take, is refused at once;
// the host keeps the id the agent reports, and the secret is what the control plane sends on every
// later call to it.

import { type Static, Type } from '@sinclair/typebox';
import { InvalidArgumentError, NotFoundError, UnauthenticatedError } from '@wrenn/protocol';
import type { FastifyPluginAsync } from 'fastify';
import { HostSchema, hostJson } from '../api/native/schemas.js';
import { sha256Hex } from '../auth/hash.js';
import { createHostToken, isHostTokenFormat } from '../auth/host-tokens.js';
import type { ControlPlaneContext } from '../context.js';
import { listHostLoads, setHostDraining } from '../db/repositories/hosts.js';
import { requireAdmin } from './admin-auth.js';
import { describeProbeError, probeAddress } from './probe.js';
import { admitHost } from './register-host.js';

const MAX_TOKEN_TTL_SEC = 30 * 24 * 3600;
const REGISTER_BODY_LIMIT = 16 * 1024;
/** How long registration waits for the agent to answer GetHostInfo at the address it gave. */
const REGISTER_PROBE_TIMEOUT_MS = 5_000;

const ErrorBody = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) });

const TokenRequest = Type.Object(
  {
    ttl_sec: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_TOKEN_TTL_SEC, description: 'Validity in seconds (default 3600)' }),
    ),
  },
  { additionalProperties: false },
);
const TokenResponse = Type.Object({
  id: Type.String(),
  token: Type.String({ description: 'Shown once: give it to `wrenn agent --token`' }),
  expires_at: Type.String({ format: 'date-time' }),
});

const RegisterRequest = Type.Object(
  {
    token: Type.String({ minLength: 1 }),
    address: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'Base URL of the agent, e.g. http://10.0.0.5:5007',
    }),
    runtimes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 16 })),
    cpu_count: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536 })),
    memory_mb: Type.Optional(Type.Integer({ minimum: 1, maximum: 1 << 30 })),
    host_id: Type.Optional(
      Type.String({ maxLength: 128, description: "The agent's own id; must match what the agent reports" }),
    ),
    agent_secret: Type.String({
      minLength: 32,
      maxLength: 256,
      pattern: '^[A-Za-z0-9._~+/=-]+$',
      description:
        'The secret the agent demands of its callers (its <data dir>/agent-secret or WRENN_AGENT_SECRET); the control plane presents it on every call',
    }),
  },
  { additionalProperties: false },
);
type RegisterBody = Static<typeof RegisterRequest>;
const RegisterResponse = Type.Object({ host_id: Type.String() });

function agentAddress(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new InvalidArgumentError(
      `address "${raw}" is not a URL; give the agent's base URL, e.g. http://10.0.0.5:5007`,
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new InvalidArgumentError(`address must be http:// or https://, got ${u.protocol}`);
  if (u.pathname !== '/' || u.search || u.hash || u.username) {
    throw new InvalidArgumentError(
      `address must be a bare base URL without path, query or credentials, e.g. ${u.protocol}//${u.host}`,
    );
  }
  return `${u.protocol}//${u.host}`;
}

async function tokenUsable(ctx: ControlPlaneContext, token: string): Promise<boolean> {
  if (!isHostTokenFormat(token)) return false;
  const row = await ctx.database.db
    .selectFrom('host_tokens')
    .select('id')
    .where('hash', '=', sha256Hex(token))
    .where('used_at', 'is', null)
    .where('expires_at', '>', Date.now())
    .executeTakeFirst();
  return row !== undefined;
}

const HostParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

export const hostRoutes: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  for (const [verb, draining] of [
    ['drain', true],
    ['undrain', false],
  ] as const) {
    app.post(
      `/v1/hosts/:id/${verb}`,
      {
        onRequest: async (req) => {
          await requireAdmin(ctx, req);
        },
        schema: {
          tags: ['hosts'],
          summary: draining
            ? 'Drain a host (admin): no new capsules go there; the capsules it has stay'
            : 'Open a drained host to new capsules again (admin)',
          params: HostParams,
          response: { 200: HostSchema, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
        },
      },
      async (req, reply) => {
        const { id } = req.params as Static<typeof HostParams>;
        const host = await setHostDraining(ctx.database.db, id, draining);
        if (!host) throw new NotFoundError(`no host ${id}; \`wrenn host ls\` lists them`);
        ctx.log.info({ hostId: id, draining }, draining ? 'host drained' : 'host undrained');
        const load = (await listHostLoads(ctx.database.db, { status: host.status })).find((l) => l.host.id === id);
        return reply.send(
          hostJson(
            load ?? {
              host,
              capsules: 0,
              vcpus: host.reported.allocatedVcpus,
              memoryMb: host.reported.allocatedMemoryMb,
            },
          ),
        );
      },
    );
  }

  app.post(
    '/v1/hosts/tokens',
    {
      // The admin key before the body is read.
      onRequest: async (req) => {
        await requireAdmin(ctx, req);
      },
      schema: {
        tags: ['hosts'],
        summary: 'Create a one-time host registration token (admin)',
        body: Type.Optional(TokenRequest),
        response: { 201: TokenResponse, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req, reply) => {
      const body = (req.body ?? {}) as Static<typeof TokenRequest>;
      const t = await createHostToken(ctx.database.db, { ttlMs: (body.ttl_sec ?? 3600) * 1000 });
      ctx.log.info({ tokenId: t.id, expiresAt: t.expiresAt }, 'host registration token created');
      return reply.status(201).send({ id: t.id, token: t.token, expires_at: t.expiresAt.toISOString() });
    },
  );

  app.post(
    '/v1/hosts/register',
    {
      // Authenticated by the token in the body: a small body, read under the edge's body timeout.
      bodyLimit: REGISTER_BODY_LIMIT,
      schema: {
        tags: ['hosts'],
        summary: 'Register a host agent with a one-time token',
        security: [],
        body: RegisterRequest,
        response: { 201: RegisterResponse, 400: ErrorBody, 401: ErrorBody },
      },
    },
    async (req, reply) => {
      const body = req.body as RegisterBody;
      const address = agentAddress(body.address);
      // Check the token before contacting the address, so nobody without a token makes us dial out.
      if (!(await tokenUsable(ctx, body.token))) {
        throw new UnauthenticatedError(
          'host registration token is invalid, expired or already used; ask an admin for a new one (POST /v1/hosts/tokens)',
        );
      }
      let info: Awaited<ReturnType<typeof probeAddress>>;
      try {
        info = await probeAddress(address, body.agent_secret, REGISTER_PROBE_TIMEOUT_MS);
      } catch (err) {
        if (err instanceof UnauthenticatedError) {
          throw new InvalidArgumentError(
            `the agent at ${address} refused agent_secret: send the secret that agent uses (its <data dir>/agent-secret or WRENN_AGENT_SECRET)`,
          );
        }
        throw new InvalidArgumentError(
          `the control plane cannot reach the agent at ${address} (${describeProbeError(err)}); give an address this control plane can reach`,
        );
      }
      if (body.host_id && info.agentHostId && body.host_id !== info.agentHostId) {
        throw new InvalidArgumentError(
          `the agent at ${address} reports host id ${info.agentHostId}, not ${body.host_id}: is the address right?`,
        );
      }
      const { host, created } = await admitHost(ctx.database.db, {
        token: body.token,
        address,
        agentHostId: info.agentHostId || body.host_id,
        runtimes: body.runtimes ?? info.runtimes,
        cpuCount: body.cpu_count ?? info.cpuCount,
        memoryMb: body.memory_mb ?? info.memoryMb,
        agentSecret: body.agent_secret,
      });
      ctx.agents.forget(host.id);
      ctx.log.info({ hostId: host.id, address, runtimes: host.runtimes, created }, 'host registered');
      return reply.status(201).send({ host_id: host.id });
    },
  );
};
