// The name servers capsules are given (their /etc/resolv.conf): the host's own, minus loopback
// ones a capsule cannot reach. The firewall opens port 53 to exactly these, as they are often
// private addresses that capsules may not reach otherwise.
import { readFileSync } from 'node:fs';

let cached: string[] | undefined;

/** Non-loopback name servers of the host's /etc/resolv.conf (read once). */
export function hostNameServers(): string[] {
  if (!cached) {
    let text = '';
    try {
      text = readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      // no resolver configured on the host
    }
    cached = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
      .map((m) => m[1] ?? '')
      .filter((ip) => ip && !ip.startsWith('127.') && ip !== '::1');
  }
  return cached;
}
