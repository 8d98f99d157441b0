// A capsule's egress policy after create: read from and replaced on its host agent, which keeps it
// with the capsule's record (so it survives pause, resume and an agent restart) and applies it to
// the capsule's next connections at once. Both APIs call these; the contract judges the policy.
import { type EgressPolicy, egressPolicyProblem, InvalidArgumentError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { recordEvent } from './audit.js';
import { agentForCapsule, requireCapsuleState } from './lookup.js';

/** The policy as the agent keeps it (normalised; empty lists when none). */
export interface CapsuleEgressPolicy {
  allowOut: string[];
  denyOut: string[];
  rules: NonNullable<EgressPolicy['rules']>;
}

type AgentPolicy =
  | { allowOut: string[]; denyOut: string[]; rules: Record<string, { rules: { headers: Record<string, string> }[] }> }
  | undefined;

function fromAgent(p: AgentPolicy): CapsuleEgressPolicy {
  return {
    allowOut: [...(p?.allowOut ?? [])],
    denyOut: [...(p?.denyOut ?? [])],
    rules: Object.fromEntries(
      Object.entries(p?.rules ?? {}).map(([domain, r]) => [
        domain,
        r.rules.map((rule) => (Object.keys(rule.headers).length ? { transform: { headers: rule.headers } } : {})),
      ]),
    ),
  };
}

/** The create/update policy in the agent's wire shape. */
export function policyToAgent(p: EgressPolicy) {
  return {
    allowOut: p.allowOut ?? [],
    denyOut: p.denyOut ?? [],
    rules: Object.fromEntries(
      Object.entries(p.rules ?? {}).map(([domain, list]) => [
        domain,
        { rules: list.map((rule) => ({ headers: { ...(rule.transform?.headers ?? {}) } })) },
      ]),
    ),
  };
}

/** Does a create's policy hold anything (an empty one is left out of the agent request)? */
export function hasPolicy(p: EgressPolicy | undefined): p is EgressPolicy {
  return !!p && (!!p.allowOut?.length || !!p.denyOut?.length || Object.keys(p.rules ?? {}).length > 0);
}

export async function getCapsuleNetwork(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
): Promise<CapsuleEgressPolicy> {
  const c = await requireCapsuleState(ctx, teamId, id, ['running', 'paused', 'hibernated'], 'read the network of');
  const res = await (await agentForCapsule(ctx, c)).getCapsule({ id });
  return fromAgent(res.capsule?.network);
}

/** Replaces the egress policy (an omitted field clears it); running or paused capsules only. */
export async function updateCapsuleNetwork(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  policy: EgressPolicy,
): Promise<CapsuleEgressPolicy> {
  const problem = egressPolicyProblem(policy);
  if (problem) throw new InvalidArgumentError(problem);
  const c = await requireCapsuleState(ctx, teamId, id, ['running', 'paused', 'hibernated'], 'change the network of');
  const res = await (await agentForCapsule(ctx, c)).updateCapsuleNetwork({ id, network: policyToAgent(policy) });
  const now = fromAgent(res.capsule?.network);
  // Only the shape goes to the audit log: header values are secrets.
  await recordEvent(ctx, teamId, id, 'capsule.network_set', {
    allow_out: now.allowOut,
    deny_out: now.denyOut,
    rule_domains: Object.keys(now.rules),
  });
  return now;
}
