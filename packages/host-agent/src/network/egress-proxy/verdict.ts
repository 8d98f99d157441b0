// Whether the egress proxy may carry a capsule's connection to `host` at `ip`: the same order as
// the kernel's rules (allowOut beats denyOut beats the internet switch), plus domains, which only
// the proxy can see. A name never opens a closed address: an allowed domain that resolves to a
// private range, the host itself or link-local is refused (DNS rebinding), as the kernel refuses
// those addresses dialled directly.
import { domainMatches, parseIpv4Cidr } from '@wrenn/protocol';
import type { CapsuleEgress } from '../manager.js';

export interface Verdict {
  allow: boolean;
  why: string;
}

const within = (ip: string, cidrs: readonly string[]) => {
  const n = parseIpv4Cidr(ip).base;
  return cidrs.some((c) => {
    const r = parseIpv4Cidr(c);
    return n >= r.base && n < r.base + 2 ** (32 - r.prefixLen);
  });
};

/**
 * `closed(ip)`: the address is one capsules may not reach (non-global and not opened for this
 * capsule or host, or an address of the host itself).
 */
export function egressVerdict(
  e: CapsuleEgress,
  host: string | undefined,
  ip: string,
  closed: (ip: string) => boolean,
): Verdict {
  if (closed(ip)) return { allow: false, why: `${ip} is in a range capsules may not reach` };
  if (host && e.domains.some((p) => domainMatches(p, host))) return { allow: true, why: `${host} is in allowOut` };
  if (within(ip, e.allowCidrs)) return { allow: true, why: `${ip} is in allowOut` };
  if (within(ip, e.denyOut)) return { allow: false, why: `${host ?? ip} is denied by denyOut` };
  if (!e.internet) return { allow: false, why: 'internet access is off' };
  return { allow: true, why: 'internet access is on' };
}

/** The transform rules of the first rules key that matches `host` (exact keys before `*.` ones). */
export function rulesFor(e: CapsuleEgress, host: string): Record<string, string> | undefined {
  const keys = Object.keys(e.rules).sort((a, b) => Number(a.startsWith('*.')) - Number(b.startsWith('*.')));
  const key = keys.find((k) => domainMatches(k.toLowerCase(), host));
  if (!key) return undefined;
  const headers: Record<string, string> = {};
  for (const rule of e.rules[key] ?? []) Object.assign(headers, rule.transform?.headers ?? {});
  return headers;
}
