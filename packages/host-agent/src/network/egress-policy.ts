// Which destinations capsules may reach: the IPv4 ranges that are not global (RFC 6890 special
// purpose, private, link-local, multicast...) are closed by default, so a capsule cannot reach the
// host's LAN, a cloud's metadata service or a neighbour's private services. The host opens ranges
// for all its capsules (WRENN_EGRESS_ALLOW_CIDRS), or lets a capsule open some for itself
// (`allowOut` entries inside WRENN_EGRESS_OPENABLE_CIDRS): the API caller is a tenant, so what a
// capsule may open is the operator's choice. Strict parsing: bad input is an error, never ignored.
import { CAPSULE_LIMITS, type Ipv4Cidr, parseIpv4Cidr } from '@wrenn/protocol';

export type Cidr = Ipv4Cidr;

/** Non-global IPv4 ranges closed to capsules by default (the host's own addresses are closed by the INPUT chain). */
export const NON_GLOBAL_V4: readonly string[] = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // shared address space (CGNAT)
  '127.0.0.0/8', // loopback, if anything routes it
  '169.254.0.0/16', // link-local: cloud metadata services (ours is REDIRECTed before this applies)
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // TEST-NET-1
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and 255.255.255.255
];

/** How many allowOut entries one capsule may have (each is one rule in the shared chains). */
export const MAX_ALLOW_OUT = CAPSULE_LIMITS.maxAllowOut;

/** Parses "a.b.c.d/len" or a bare "a.b.c.d" (= /32); host bits must be zero (the contract's parser). */
export const parseCidr = (input: string): Cidr => parseIpv4Cidr(input);

/** A comma-separated list (an environment variable); empty or unset = none. */
export function parseCidrList(value: string | undefined, what: string): Cidr[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map((s) => {
    try {
      return parseCidr(s.trim());
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  });
}

function size(c: Cidr): number {
  return 2 ** (32 - c.prefixLen);
}

/** `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return (
    inner.prefixLen >= outer.prefixLen &&
    inner.base >= outer.base &&
    inner.base + size(inner) <= outer.base + size(outer)
  );
}

const NON_GLOBAL = NON_GLOBAL_V4.map(parseCidr);

/** The closed range that holds all of `c`, if any (a capsule needs the operator's leave to open it). */
export function nonGlobalRangeOf(c: Cidr): Cidr | undefined {
  return NON_GLOBAL.find((r) => cidrWithin(c, r));
}

/**
 * Validates a capsule's allowOut list and returns it normalised. An entry inside a closed range
 * must also lie inside one of `openable` (or `hostAllowed`, open to every capsule anyway); an
 * entry only partly in closed ranges (e.g. 0.0.0.0/0) opens just its global part.
 */
export function checkAllowOut(list: unknown, openable: readonly Cidr[], hostAllowed: readonly Cidr[]): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new Error('allowOut must be a list of IPv4 CIDRs');
  if (list.length > MAX_ALLOW_OUT) throw new Error(`allowOut has ${list.length} entries; at most ${MAX_ALLOW_OUT}`);
  const all: string[] = [];
  for (const entry of list) {
    const c = parseCidr(entry as string);
    const closed = nonGlobalRangeOf(c);
    if (closed && !hostAllowed.some((h) => cidrWithin(c, h)) && !openable.some((o) => cidrWithin(c, o))) {
      throw new Error(
        `allowOut ${c.text} is inside ${closed.text}, which capsules may not reach on this host ` +
          `(the operator lists the private ranges capsules may open in WRENN_EGRESS_OPENABLE_CIDRS)`,
      );
    }
    if (!all.includes(c.text)) all.push(c.text);
  }
  return all;
}

/**
 * The entries of a (checked) allowOut list that get past the block: inside a closed range and an
 * openable one. Recomputed from the operator's current settings, so narrowing them closes again.
 */
export function openedEntries(
  allowOut: readonly string[],
  openable: readonly Cidr[],
  hostAllowed: readonly Cidr[],
): string[] {
  return allowOut.filter((text) => {
    const c = parseCidr(text);
    return nonGlobalRangeOf(c) && !hostAllowed.some((h) => cidrWithin(c, h)) && openable.some((o) => cidrWithin(c, o));
  });
}
