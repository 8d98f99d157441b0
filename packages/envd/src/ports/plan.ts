// Decides which listening ports need a forwarder: servers reachable only on loopback.
import { isLoopback, isWildcard, unmapIPv4 } from './addresses.js';
import type { TcpListener } from './proc-net-tcp.js';

export interface PlanInput {
  listeners: TcpListener[];
  /** The address forwarders listen on. */
  external: string;
  /** Ports that already have one of our forwarders (their listener on `external` is ours). */
  forwarded: ReadonlySet<number>;
  excludePorts: ReadonlySet<number>;
}

/** Port -> loopback address to forward to. */
export function planForwards({ listeners, external, forwarded, excludePorts }: PlanInput): Map<number, string> {
  const byPort = new Map<number, TcpListener[]>();
  for (const l of listeners) {
    const list = byPort.get(l.port);
    if (list) list.push(l);
    else byPort.set(l.port, [l]);
  }
  const plan = new Map<number, string>();
  for (const [port, list] of byPort) {
    if (excludePorts.has(port)) continue;
    const loopback = list.filter((l) => isLoopback(l.address));
    if (loopback.length === 0) continue;
    // Bound to every address, or someone else's server already on the external address: reachable as is.
    if (list.some((l) => isWildcard(l.address))) continue;
    if (!forwarded.has(port) && list.some((l) => unmapIPv4(l.address) === external)) continue;
    // Prefer an IPv4 loopback target (127.x or IPv4-mapped), else ::1.
    const v4 = loopback.find((l) => unmapIPv4(l.address) !== '::1');
    plan.set(port, v4 ? unmapIPv4(v4.address) : '::1');
  }
  return plan;
}
