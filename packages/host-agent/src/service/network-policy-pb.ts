// A capsule's egress policy between its record shape and the agent service's protobuf message
// (rules become a map of domain -> list of header maps on the wire).
import { create } from '@bufbuild/protobuf';
import {
  CapsuleNetworkPolicySchema,
  type CapsuleNetworkPolicy as PbPolicy,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { CapsuleNetworkPolicy } from '../manager/types.js';

export function policyFromPb(pb: PbPolicy | undefined): CapsuleNetworkPolicy | undefined {
  if (!pb) return undefined;
  const rules = Object.fromEntries(
    Object.entries(pb.rules).map(([domain, r]) => [
      domain,
      r.rules.map((rule) => (Object.keys(rule.headers).length ? { transform: { headers: { ...rule.headers } } } : {})),
    ]),
  );
  return {
    allowOut: [...pb.allowOut],
    ...(pb.denyOut.length ? { denyOut: [...pb.denyOut] } : {}),
    ...(Object.keys(rules).length ? { rules } : {}),
  };
}

export function policyToPb(p: CapsuleNetworkPolicy): PbPolicy {
  return create(CapsuleNetworkPolicySchema, {
    allowOut: p.allowOut,
    denyOut: p.denyOut ?? [],
    rules: Object.fromEntries(
      Object.entries(p.rules ?? {}).map(([domain, list]) => [
        domain,
        { rules: list.map((rule) => ({ headers: { ...(rule.transform?.headers ?? {}) } })) },
      ]),
    ),
  });
}
