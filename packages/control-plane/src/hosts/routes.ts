// Host routes (a Fastify plugin, registered by server.ts): admins create one-time registration
// tokens; a host agent spends one to register its address and capacity.
//   POST /v1/hosts/tokens    (admin key)  {ttl_sec?}                                   -> 201 {id, token, expires_at}
//   POST /v1/hosts/register  (the token)  {token, address, agent_secret, agent_tls_cert?, runtimes?, cpu_count?, memory_mb?, host_id?} -> 201 {host_id}
//   POST /v1/hosts/:id/drain   (admin key)  -> 200 host: no new capsules go there, its own stay
//   POST /v1/hosts/:id/undrain (admin key)  -> 200 host: takes new capsules again
//   PUT /v1/hosts/:id/warm-pool    (admin key)  {sizes: {template: count}} -> 200 host (the agent took them)
//                                               or 202 host (kept; sent when the agent answers again)
//   DELETE /v1/hosts/:id/warm-pool (admin key)  -> 200 host: the sizes set here are forgotten (the agent
//                                               keeps its pools until it restarts with its own --warm-pool)
// Registration first asks the agent at `address` for GetHostInfo, presenting `agent_secret`, so an
// address the control plane cannot reach, or a secret that agent does not take, is refused at once;
// the host keeps the id the agent reports, and the secret is what the control plane sends on every
// later call to it. An https:// agent sends the certificate it serves (agent_tls_cert): the probe
// already accepts only that certificate (trust on first registration, vouched for by the token),
// and every later connection to the agent is pinned to it (host-agent auth/pinned-tls.ts).

import { type Static, Type } from '@sinclair/typebox';
import { agentTlsCode, certificateFingerprint } from '@wrenn/host-agent/client';
import { InvalidArgumentError, NotFoundError, UnauthenticatedError, UnavailableError } from '@wrenn/protocol';
import type { FastifyPluginAsync } from 'fastify';
import { HostSchema, hostJson } from '../api/native/schemas.js';
import { sha256Hex } from '../auth/hash.js';
import { createHostToken, isHostTokenFormat } from '../auth/host-tokens.js';
import type { ControlPlaneContext } from '../context.js';
import { getHost, type Host, listHostLoads, setHostDraining, setHostWarmPoolTarget } from '../db/repositories/hosts.js';
import { requireAdmin } from './admin-auth.js';
import { describeProbeError, probeAddress } from './probe.js';
import { admitHost } from './register-host.js';
import { agentWarmPoolSizes, applyWarmPool, normalTargets } from './warm-pool.js';

const MAX_TOKEN_TTL_SEC = 30 * 24 * 3600;
/** Room for a certificate (PEM) besides the rest. */
const REGISTER_BODY_LIMIT = 32 * 1024;
const MAX_CERT_PEM = 16 * 1024;
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
    agent_tls_cert: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_CERT_PEM,
        description:
          'With an https:// address: the certificate the agent serves (PEM). The control plane accepts only this certificate from the agent from now on; a new one needs a new registration',
      }),
    ),
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

/** The certificate to pin for `address`: required with https://, refused with http://. */
function agentCertificate(address: string, pem: string | undefined): string | null {
  const https = address.startsWith('https:');
  if (!https) {
    if (pem !== undefined)
      throw new InvalidArgumentError(
        `agent_tls_cert was sent but address ${address} is http://; an agent that serves TLS registers an https:// address`,
      );
    return null;
  }
  if (pem === undefined)
    throw new InvalidArgumentError(
      `address ${address} is https:// but agent_tls_cert is missing: send the certificate the agent serves (PEM), which the control plane pins`,
    );
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  if (blocks !== 1 || !certificateFingerprint(pem))
    throw new InvalidArgumentError("agent_tls_cert must be one PEM certificate (the agent's own, without its chain)");
  return pem;
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

/** A host as the API shows it, with its load. */
async function hostWithLoad(ctx: ControlPlaneContext, host: Host) {
  const load = (await listHostLoads(ctx.database.db, { status: host.status })).find((l) => l.host.id === host.id);
  return hostJson(
    load ?? { host, capsules: 0, vcpus: host.reported.allocatedVcpus, memoryMb: host.reported.allocatedMemoryMb },
  );
}

const MAX_WARM_TEMPLATES = 64;
const WarmPoolRequest = Type.Object(
  {
    sizes: Type.Record(
      Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' }),
      Type.Integer({ minimum: 0, maximum: 999 }),
      {
        maxProperties: MAX_WARM_TEMPLATES,
        additionalProperties: false,
        description:
          'Ready capsules to keep per template (a built-in by name, any other by its template id); a template left out keeps none',
      },
    ),
  },
  { additionalProperties: false },
);

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
        return reply.send(await hostWithLoad(ctx, host));
      },
    );
  }

  const adminOnly = {
    onRequest: async (req: Parameters<typeof requireAdmin>[1]) => {
      await requireAdmin(ctx, req);
    },
  };
  app.put(
    '/v1/hosts/:id/warm-pool',
    {
      ...adminOnly,
      bodyLimit: REGISTER_BODY_LIMIT,
      schema: {
        tags: ['hosts'],
        summary:
          'Set how many ready capsules a host keeps booted per template (admin); kept, and sent to its agent again when it restarts',
        params: HostParams,
        body: WarmPoolRequest,
        response: { 200: HostSchema, 202: HostSchema, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params as Static<typeof HostParams>;
      const { sizes } = req.body as Static<typeof WarmPoolRequest>;
      const db = ctx.database.db;
      const known = await getHost(db, id);
      if (!known) throw new NotFoundError(`no host ${id}; \`wrenn host ls\` lists them`);
      const target = normalTargets(await agentWarmPoolSizes(ctx, sizes));
      if (known.status !== 'online') {
        // Kept; the host monitor sends them when the agent answers again.
        const kept = await setHostWarmPoolTarget(db, id, target);
        ctx.log.info({ hostId: id, sizes: target }, 'warm pool sizes kept for a host that is not online');
        return reply.status(202).send(await hostWithLoad(ctx, kept ?? known));
      }
      try {
        // The agent judges the templates first (one it cannot build is a 404), then the sizes are kept.
        await applyWarmPool(ctx, known, target);
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err;
        const kept = await setHostWarmPoolTarget(db, id, target);
        ctx.log.warn({ hostId: id, sizes: target }, 'warm pool sizes kept; the host did not answer, sent when it does');
        return reply.status(202).send(await hostWithLoad(ctx, kept ?? known));
      }
      const kept = await setHostWarmPoolTarget(db, id, target);
      ctx.log.info({ hostId: id, sizes: target }, 'warm pool sizes set');
      return reply.send(await hostWithLoad(ctx, kept ?? known));
    },
  );

  app.delete(
    '/v1/hosts/:id/warm-pool',
    {
      ...adminOnly,
      schema: {
        tags: ['hosts'],
        summary:
          'Forget the warm pool sizes set for a host (admin); its agent keeps its pools until it restarts with its own --warm-pool',
        params: HostParams,
        response: { 200: HostSchema, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params as Static<typeof HostParams>;
      const host = await setHostWarmPoolTarget(ctx.database.db, id, null);
      if (!host) throw new NotFoundError(`no host ${id}; \`wrenn host ls\` lists them`);
      return reply.send(await hostWithLoad(ctx, host));
    },
  );

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
      const agentTlsCert = agentCertificate(address, body.agent_tls_cert);
      // Check the token before contacting the address, so nobody without a token makes us dial out.
      if (!(await tokenUsable(ctx, body.token))) {
        throw new UnauthenticatedError(
          'host registration token is invalid, expired or already used; ask an admin for a new one (POST /v1/hosts/tokens)',
        );
      }
      let info: Awaited<ReturnType<typeof probeAddress>>;
      try {
        info = await probeAddress(address, body.agent_secret, REGISTER_PROBE_TIMEOUT_MS, agentTlsCert);
      } catch (err) {
        if (err instanceof UnauthenticatedError) {
          throw new InvalidArgumentError(
            `the agent at ${address} refused agent_secret: send the secret that agent uses (its <data dir>/agent-secret or WRENN_AGENT_SECRET)`,
          );
        }
        const tlsCode = agentTlsCode(err);
        if (tlsCode) {
          throw new InvalidArgumentError(
            `the agent at ${address} does not serve the certificate sent as agent_tls_cert (${tlsCode}); nothing was sent to it: send the certificate that agent serves (its <data dir>/agent-tls/agent.crt, or its --tls-cert), or check the address`,
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
        agentTlsCert,
      });
      // Every replica's cached routes to its capsules carry the old address and certificate: all
      // dropped (cluster/capsule-changes.ts) before the agent hears it is registered.
      await ctx.hostChanged(host.id);
      ctx.log.info(
        {
          hostId: host.id,
          address,
          runtimes: host.runtimes,
          created,
          ...(agentTlsCert ? { tlsCertSha256: certificateFingerprint(agentTlsCert) } : {}),
        },
        'host registered',
      );
      return reply.status(201).send({ host_id: host.id });
    },
  );
};
