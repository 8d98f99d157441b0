// E2B's egress policy: `network.allowOut/denyOut/rules` of a create and PUT
// /sandboxes/{sandboxID}/network, which replaces the policy of a running sandbox (an omitted field
// clears it; `allow_internet_access: false` is denyOut 0.0.0.0/0, as E2B documents it). The
// contract judges the entries; `egressProxy` (an upstream SOCKS proxy) is not built: 400.
import { Type } from '@sinclair/typebox';
import { ALL_TRAFFIC, type EgressPolicy, InvalidArgumentError, type PublicTrafficSettings } from '@wrenn/protocol';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { updateCapsuleNetwork } from '../../services/capsules.js';
import { e2bTeam } from './auth.js';
import { visibleCapsule } from './sandboxes.js';
import { errorResponses, SandboxIdParams } from './schemas.js';

/** The egress fields of an E2B `network` object (create or update) as the contract's policy. */
export function e2bEgressPolicy(network: Record<string, unknown> | undefined): EgressPolicy | undefined {
  if (!network) return undefined;
  if (network.egressProxy !== undefined && network.egressProxy !== null) {
    throw new InvalidArgumentError('network.egressProxy is not supported by Wrenn (no upstream proxy for egress)');
  }
  const { allowOut, denyOut, rules } = network as EgressPolicy;
  if (allowOut === undefined && denyOut === undefined && rules === undefined) return undefined;
  return {
    ...(allowOut !== undefined && allowOut !== null ? { allowOut } : {}),
    ...(denyOut !== undefined && denyOut !== null ? { denyOut } : {}),
    ...(rules !== undefined && rules !== null ? { rules } : {}),
  };
}

/** E2B's `network.allowPublicTraffic` and `network.maskRequestHost` of a create, type-checked. */
export function e2bPublicTraffic(network: Record<string, unknown> | undefined): PublicTrafficSettings {
  const { allowPublicTraffic, maskRequestHost } = network ?? {};
  if (allowPublicTraffic !== undefined && allowPublicTraffic !== null && typeof allowPublicTraffic !== 'boolean')
    throw new InvalidArgumentError('network.allowPublicTraffic must be a boolean');
  if (maskRequestHost !== undefined && maskRequestHost !== null && typeof maskRequestHost !== 'string')
    throw new InvalidArgumentError('network.maskRequestHost must be a string');
  return {
    ...(typeof allowPublicTraffic === 'boolean' ? { allowPublicTraffic } : {}),
    ...(typeof maskRequestHost === 'string' ? { maskRequestHost } : {}),
  };
}

const UpdateNetworkBody = Type.Object({
  allowOut: Type.Optional(Type.Array(Type.String())),
  denyOut: Type.Optional(Type.Array(Type.String())),
  rules: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  egressProxy: Type.Optional(Type.Unknown()),
  allow_internet_access: Type.Optional(Type.Boolean()),
});

export function networkRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  app.put(
    '/sandboxes/:sandboxID/network',
    {
      schema: {
        tags: ['e2b'],
        summary: 'Replace the egress rules of a running sandbox',
        description:
          'Omitting a field clears it. allow_internet_access false = denyOut 0.0.0.0/0. New connections follow ' +
          'the rules at once.',
        params: SandboxIdParams,
        body: UpdateNetworkBody,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      const body = req.body as Record<string, unknown> & { allow_internet_access?: boolean };
      const policy = e2bEgressPolicy(body) ?? {};
      if (body.allow_internet_access === false) policy.denyOut = [...(policy.denyOut ?? []), ALL_TRAFFIC];
      await visibleCapsule(ctx, team.id, id);
      await updateCapsuleNetwork(ctx, team.id, id, policy);
      return reply.status(204).send();
    },
  );
}
