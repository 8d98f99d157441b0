// The capsule address pool: an IPv4 CIDR cut into /30 slots. Slot n owns base+4n .. base+4n+3:
// .1 is the host side of the veth (and the capsule's gateway), .2 the capsule side.

export interface AddressPool {
  cidr: string; // normalised, e.g. 10.201.0.0/16
  base: number; // network address as an unsigned 32-bit number
  prefixLen: number;
  slots: number;
}

export const SLOT_PREFIX_LEN = 30;

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`"${ip}" is not an IPv4 address`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses a pool such as "10.201.0.0/16"; the prefix must leave room for at least one /30 slot. */
export function parsePool(cidr: string): AddressPool {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) throw new Error(`network pool "${cidr}" is not an IPv4 CIDR like 10.201.0.0/16 (check WRENN_NET_POOL)`);
  const prefixLen = Number(m[2]);
  if (prefixLen < 8 || prefixLen > SLOT_PREFIX_LEN) {
    throw new Error(`network pool "${cidr}": prefix length must be between /8 and /30 (check WRENN_NET_POOL)`);
  }
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  const base = (ipToInt(m[1]!) & mask) >>> 0;
  return { cidr: `${intToIp(base)}/${prefixLen}`, base, prefixLen, slots: 2 ** (SLOT_PREFIX_LEN - prefixLen) };
}

export function slotAddresses(pool: AddressPool, slot: number): { hostIp: string; capsuleIp: string } {
  if (!Number.isInteger(slot) || slot < 0 || slot >= pool.slots) {
    throw new Error(`slot ${slot} is outside the pool ${pool.cidr} (${pool.slots} slots)`);
  }
  const net = pool.base + slot * 4;
  return { hostIp: intToIp(net + 1), capsuleIp: intToIp(net + 2) };
}

/** The slot whose capsule side owns `ip`, or undefined. */
export function slotOfCapsuleIp(pool: AddressPool, ip: string): number | undefined {
  let n: number;
  try {
    n = ipToInt(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
  } catch {
    return undefined;
  }
  const off = n - pool.base;
  if (off < 0 || off >= pool.slots * 4 || off % 4 !== 2) return undefined;
  return (off - 2) / 4;
}
