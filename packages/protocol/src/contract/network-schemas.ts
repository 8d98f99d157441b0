// The native API's capsule `network` JSON (snake_case) as TypeBox schemas: a create's `network` and
// the body of `PUT /v1/capsules/:id/network`. Bounds come from the network contract (network.ts);
// the entries' syntax is checked by its egressPolicyProblem, which names the bad entry.
import { type Static, Type } from 'typebox';
import { NETWORK_LIMITS } from './network.js';

const Entry = Type.String({ minLength: 1, maxLength: NETWORK_LIMITS.maxDomainLength + 2 });

export const NetworkRuleSchema = Type.Object(
  {
    transform: Type.Optional(
      Type.Object(
        {
          headers: Type.Optional(
            Type.Record(Type.String(), Type.String({ maxLength: NETWORK_LIMITS.maxHeaderValueLength }), {
              description: 'Headers set (replacing any of the same name) on every request to the domain',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** The egress fields, shared by create and update. */
export const EgressPolicyProperties = {
  allow_out: Type.Optional(
    Type.Array(Entry, {
      maxItems: NETWORK_LIMITS.maxAllowOut,
      description:
        'Destinations the capsule may reach whatever deny_out says: IPv4 CIDRs, addresses, domains and *.domain ' +
        '(domains are enforced on ports 80/443 by the egress proxy). Private, link-local and other non-global ' +
        "ranges are closed; naming one is refused (400) unless the host's WRENN_EGRESS_OPENABLE_CIDRS covers it",
    }),
  ),
  deny_out: Type.Optional(
    Type.Array(Entry, {
      maxItems: NETWORK_LIMITS.maxDenyOut,
      description: 'IPv4 CIDRs or addresses the capsule may not reach; 0.0.0.0/0 = everything allow_out does not name',
    }),
  ),
  rules: Type.Optional(
    Type.Record(Type.String(), Type.Array(NetworkRuleSchema, { maxItems: NETWORK_LIMITS.maxRulesPerDomain }), {
      description:
        'Domain -> transforms the egress proxy applies to HTTP(S) requests to it (header injection); ' +
        'the values never enter the capsule. A domain here is not allowed by it: use allow_out',
    }),
  ),
};

/** A create's `network` (other helpers add their non-egress keys here). */
export const CreateNetworkSchema = Type.Object(
  {
    ...EgressPolicyProperties,
    allow_public_traffic: Type.Optional(
      Type.Boolean({
        description:
          'false: the capsule gets a traffic_access_token, and the sandbox proxy refuses requests to its ports ' +
          "(envd's excepted) without it in the e2b-traffic-access-token header (default true)",
      }),
    ),
    mask_request_host: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 255,
        description: "The Host header the capsule's servers see for proxied requests; ${PORT} becomes the port",
      }),
    ),
  },
  { additionalProperties: false },
);

export type CreateNetworkJson = Static<typeof CreateNetworkSchema>;

/** `PUT /v1/capsules/:id/network`: replaces the egress policy; an omitted field clears it. */
export const UpdateNetworkBody = Type.Object({ ...EgressPolicyProperties }, { additionalProperties: false });
export type UpdateNetworkBodyJson = Static<typeof UpdateNetworkBody>;

/** The egress policy as capsule JSON shows it (empty lists when none). */
export const CapsuleNetworkSchema = Type.Object({
  allow_out: Type.Array(Type.String()),
  deny_out: Type.Array(Type.String()),
  rules: Type.Record(Type.String(), Type.Array(NetworkRuleSchema)),
});
export type CapsuleNetworkJson = Static<typeof CapsuleNetworkSchema>;
