// A capsule's egress policy (E2B's `network.allowOut/denyOut/rules`): which destinations it may
// reach and which per-domain transforms the agent's egress proxy applies. The syntax and limits
// live here so every API, the agent and the SDK judge a policy the same way; which private ranges
// a capsule may open is the host's to say (WRENN_EGRESS_OPENABLE_CIDRS), not the contract's.

/** E2B's all-traffic selector (`ALL_TRAFFIC` of the e2b SDK): every IPv4 destination. */
export const ALL_TRAFFIC = '0.0.0.0/0';

export const NETWORK_LIMITS = {
  /** allowOut entries (CIDRs and domains together). */
  maxAllowOut: 64,
  /** denyOut entries (CIDRs). */
  maxDenyOut: 64,
  /** A domain name as DNS allows it. */
  maxDomainLength: 253,
  /** Domains with transform rules. */
  maxRuleDomains: 32,
  maxRulesPerDomain: 8,
  maxHeadersPerRule: 32,
  maxHeaderNameLength: 256,
  maxHeaderValueLength: 8192,
} as const;

/** Transformations applied to matching egress HTTP(S) requests (header injection). */
export interface NetworkTransform {
  /** Headers set (replaced if present) on every request to the domain. */
  headers?: Record<string, string>;
}

export interface NetworkRule {
  transform?: NetworkTransform;
}

/** The egress part of a capsule's `network` (E2B's SandboxNetworkUpdateConfig). */
export interface EgressPolicy {
  /** CIDRs, bare IPv4 addresses, domains and `*.domain` patterns; allow beats deny. */
  allowOut?: string[];
  /** CIDRs or bare IPv4 addresses; `0.0.0.0/0` denies everything allowOut does not name. */
  denyOut?: string[];
  /** Domain -> transforms applied by the egress proxy (a domain here is not allowed by it). */
  rules?: Record<string, NetworkRule[]>;
}

export interface Ipv4Cidr {
  /** Normalised text, e.g. "10.0.0.0/8". */
  text: string;
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefixLen: number;
}

const CIDR_RE = /^((?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3})(?:\/(0|[1-9]\d?))?$/;

/** Parses "a.b.c.d/len" or a bare "a.b.c.d" (= /32); host bits must be zero. Throws with why. */
export function parseIpv4Cidr(input: string): Ipv4Cidr {
  const m = typeof input === 'string' ? CIDR_RE.exec(input.trim()) : null;
  const octets = m ? m[1]!.split('.').map(Number) : [];
  const prefixLen = m ? (m[2] === undefined ? 32 : Number(m[2])) : NaN;
  if (!m || octets.some((o) => o > 255) || prefixLen > 32) {
    throw new Error(`${JSON.stringify(input)} is not an IPv4 CIDR like 10.0.0.0/8 or an IPv4 address`);
  }
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  const base = (ip & mask) >>> 0;
  if (base !== ip) {
    throw new Error(`"${input}" has host bits set: did you mean ${octetsText(base)}/${prefixLen}?`);
  }
  return { text: `${octetsText(base)}/${prefixLen}`, base, prefixLen };
}

function octetsText(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A domain or `*.domain` pattern, lower-cased (a trailing dot dropped); throws with why. At least
 * two labels, so a pattern never names a whole top-level domain by accident (`*.com`).
 */
export function parseDomainPattern(input: string): { domain: string; wildcard: boolean } {
  if (typeof input !== 'string' || input.length > NETWORK_LIMITS.maxDomainLength + 2) {
    throw new Error(`${JSON.stringify(input)} is not a domain name`);
  }
  let s = input.trim().toLowerCase().replace(/\.$/, '');
  const wildcard = s.startsWith('*.');
  if (wildcard) s = s.slice(2);
  const labels = s.split('.');
  if (labels.length < 2 || s.length > NETWORK_LIMITS.maxDomainLength || !labels.every((l) => LABEL_RE.test(l))) {
    throw new Error(
      `"${input}" is not a domain like example.com or *.example.com (letters, digits and - in each label, ` +
        `at least two labels, * only as the whole first label)`,
    );
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) throw new Error(`"${input}" is neither an IPv4 address nor a domain`);
  return { domain: s, wildcard };
}

/** One allowOut entry: an address range for the kernel, or a name for the egress proxy. */
export type EgressTarget = { kind: 'cidr'; cidr: Ipv4Cidr } | { kind: 'domain'; domain: string; wildcard: boolean };

/** Judges one allowOut/denyOut entry; throws with why (IPv6 named as such: capsules have none). */
export function parseEgressEntry(input: string, domains: boolean): EgressTarget {
  if (typeof input === 'string' && input.includes(':')) {
    throw new Error(`"${input}" is an IPv6 address or has a port; capsules have IPv4 only and rules name no ports`);
  }
  if (typeof input === 'string' && /^[\d./]+$/.test(input.trim())) return { kind: 'cidr', cidr: parseIpv4Cidr(input) };
  if (!domains) {
    throw new Error(`${JSON.stringify(input)} is not an IPv4 CIDR or address (deny_out takes no domain names)`);
  }
  return { kind: 'domain', ...parseDomainPattern(input) };
}

/** The kernel's and the proxy's halves of an allowOut list, normalised and deduplicated. */
export function splitAllowOut(list: readonly string[]): { cidrs: string[]; domains: string[] } {
  const cidrs = new Set<string>();
  const domains = new Set<string>();
  for (const entry of list) {
    const t = parseEgressEntry(entry, true);
    if (t.kind === 'cidr') cidrs.add(t.cidr.text);
    else domains.add(t.wildcard ? `*.${t.domain}` : t.domain);
  }
  return { cidrs: [...cidrs], domains: [...domains] };
}

/** Normalises denyOut to CIDR texts (deduplicated); throws with why. */
export function normaliseDenyOut(list: readonly string[]): string[] {
  return [...new Set(list.map((e) => (parseEgressEntry(e, false) as { cidr: Ipv4Cidr }).cidr.text))];
}

/** Does `host` (a lower-case name) match a pattern of splitAllowOut's `domains` (or a rules key)? */
export function domainMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (pattern.startsWith('*.')) return h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
  return h === pattern;
}

const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Hop-by-hop and framing headers stay the proxy's: a transform may not change how a request is framed.
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
  'proxy-connection',
]);

function listProblem(list: unknown, field: string, max: number): string | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) return `${field} must be a list of strings`;
  if (list.length > max) return `${field} has ${list.length} entries; at most ${max}`;
  const bad = list.find((e) => typeof e !== 'string');
  return bad === undefined ? undefined : `${field} entries must be strings, got ${JSON.stringify(bad)}`;
}

function rulesProblem(rules: unknown, field: string): string | undefined {
  if (rules === undefined) return undefined;
  if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) {
    return `${field} must be an object of domain -> list of rules`;
  }
  const entries = Object.entries(rules);
  if (entries.length > NETWORK_LIMITS.maxRuleDomains) {
    return `${field} names ${entries.length} domains; at most ${NETWORK_LIMITS.maxRuleDomains}`;
  }
  for (const [domain, list] of entries) {
    const where = `${field}[${JSON.stringify(domain)}]`;
    try {
      parseDomainPattern(domain);
    } catch (err) {
      return `${field}: ${(err as Error).message}`;
    }
    if (!Array.isArray(list)) return `${where} must be a list of rules`;
    if (list.length > NETWORK_LIMITS.maxRulesPerDomain) {
      return `${where} has ${list.length} rules; at most ${NETWORK_LIMITS.maxRulesPerDomain}`;
    }
    for (const rule of list as unknown[]) {
      if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) return `${where} entries must be objects`;
      const extra = Object.keys(rule).find((k) => k !== 'transform');
      if (extra) return `${where}: unknown rule field '${extra}' (only transform)`;
      const t = (rule as NetworkRule).transform;
      if (t === undefined || t === null) continue;
      if (typeof t !== 'object' || Array.isArray(t)) return `${where}.transform must be an object`;
      const tExtra = Object.keys(t).find((k) => k !== 'headers');
      if (tExtra) return `${where}.transform: unknown field '${tExtra}' (only headers)`;
      const problem = headersProblem(t.headers, `${where}.transform.headers`);
      if (problem) return problem;
    }
  }
  return undefined;
}

function headersProblem(headers: unknown, where: string): string | undefined {
  if (headers === undefined) return undefined;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return `${where} must be an object`;
  const entries = Object.entries(headers);
  if (entries.length > NETWORK_LIMITS.maxHeadersPerRule) {
    return `${where} has ${entries.length} headers; at most ${NETWORK_LIMITS.maxHeadersPerRule}`;
  }
  for (const [name, value] of entries) {
    if (!HEADER_NAME_RE.test(name) || name.length > NETWORK_LIMITS.maxHeaderNameLength) {
      return `${where}: ${JSON.stringify(name)} is not a header name`;
    }
    if (RESERVED_HEADERS.has(name.toLowerCase())) return `${where}: the ${name} header cannot be set by a rule`;
    if (typeof value !== 'string' || value.length > NETWORK_LIMITS.maxHeaderValueLength || /[\r\n\0]/.test(value)) {
      return `${where}.${name} must be a string of at most ${NETWORK_LIMITS.maxHeaderValueLength} characters without CR, LF or NUL`;
    }
  }
  return undefined;
}

/**
 * First problem of an egress policy as an API got it, or undefined. Messages name the fields as
 * the native API does (network.allow_out, network.deny_out, network.rules), like the contract's other rules.
 */
export function egressPolicyProblem(p: EgressPolicy | undefined, field = 'network'): string | undefined {
  if (p === undefined) return undefined;
  const tryEach = (list: string[] | undefined, name: string, domains: boolean) => {
    for (const e of list ?? []) {
      try {
        parseEgressEntry(e, domains);
      } catch (err) {
        return `${field}.${name}: ${(err as Error).message}`;
      }
    }
    return undefined;
  };
  return (
    listProblem(p.allowOut, `${field}.allow_out`, NETWORK_LIMITS.maxAllowOut) ??
    listProblem(p.denyOut, `${field}.deny_out`, NETWORK_LIMITS.maxDenyOut) ??
    tryEach(p.allowOut, 'allow_out', true) ??
    tryEach(p.denyOut, 'deny_out', false) ??
    rulesProblem(p.rules, `${field}.rules`)
  );
}
