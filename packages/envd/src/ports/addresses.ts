// Address classes the forwarder decides on, and the capsule's external address.
import { networkInterfaces } from 'node:os';

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

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
