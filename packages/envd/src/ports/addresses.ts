// Address classes the forwarder decides on, and the capsule's external address.
import { networkInterfaces } from 'node:os';

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/**
 * Text of an address in network byte order: dotted IPv4 for 4 bytes; for 16, the canonical
 * compressed IPv6 form (RFC 5952), IPv4-mapped ones as ::ffff:a.b.c.d so unmapIPv4 finds them.
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) throw new Error(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return `::ffff:${bytes.subarray(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The WHATWG URL parser prints IPv6 hosts in the canonical compressed form.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/** The IPv4 address inside an IPv4-mapped IPv6 address, else the address unchanged. */
export function unmapIPv4(address: string): string {
  return MAPPED_V4.exec(address)?.[1] ?? address;
}

export function isLoopback(address: string): boolean {
  const a = unmapIPv4(address);
  return a.startsWith('127.') || a === '::1';
}

/** Bound to every address: the server is already reachable from outside the capsule. */
export function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '::ffff:0.0.0.0';
}

/** The capsule's external IPv4 address: the first non-internal IPv4 address of its interfaces. */
export function externalIPv4(): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}
