// Chooses the host for a new capsule: among online hosts not drained by an admin that offer the
// runtime (and, for a snapshot template, the one host holding its files) and whose agent did not
// report itself full (a full host can still hand out a pooled capsule it holds), a host with a ready warm-pool capsule the create can claim (its template,
// runtime and shape) comes first, since that create skips the boot; otherwise, and among several
// such hosts, the one with the smallest share of its capacity already placed, where the share is
// the larger of the vCPU and memory fractions.
// Load comes from the capsules table, so placements count before the agent reports them; so do
// warm-pool claims (capsules of the template placed since the host's last report).
import type { Kysely } from 'kysely';
import { type Host, type HostLoad, listHostLoads } from '../db/repositories/hosts.js';
import type { Database } from '../db/schema.js';

export interface PlacementRequest {
  vcpus: number;
  memoryMb: number;
  /** Required runtime; when absent any runtime in `runtimes` (or any at all) will do. */
  runtime?: string;
  /** Runtimes the template can run on; empty means no restriction. */
  runtimes?: readonly string[];
  /** Only this host (snapshot templates live on one host). */
  hostId?: string | null;
  /** Hosts not to use (they refused this capsule already). */
  excludeHostIds?: ReadonlySet<string>;
  /**
   * Set when the create could claim a warm-pool capsule (it asks for no egress policy and no
   * volumes): the template as the agents name it, and as the capsules table names it.
   */
  warm?: { agentTemplate: string; template: string };
}

export interface Placement {
  host: Host;
  /** The runtime to ask the agent for. */
  runtime: string;
}

export class NoHostError extends Error {
  /** True when hosts could run the capsule but every one of them is full. */
  full = false;
}

/** Share of a host's capacity in use after adding the request: 0 = idle, 1 = full. */
export function loadAfter(l: HostLoad, req: { vcpus: number; memoryMb: number }): number {
  const cpu = l.host.cpuCount > 0 ? (l.vcpus + req.vcpus) / l.host.cpuCount : Infinity;
  const mem = l.host.memoryMb > 0 ? (l.memoryMb + req.memoryMb) / l.host.memoryMb : Infinity;
  return Math.max(cpu, mem);
}

function usableRuntime(host: Host, req: PlacementRequest): string | undefined {
  const allowed = (r: string) => !req.runtimes || req.runtimes.length === 0 || req.runtimes.includes(r);
  if (req.runtime) return host.runtimes.includes(req.runtime) && allowed(req.runtime) ? req.runtime : undefined;
  return host.runtimes.find(allowed);
}

/**
 * Ready warm-pool capsules on this host that the request, placed there on `runtime`, would claim:
 * the last report's count less the capsules of the template placed there since (HostLoad.warmTaken).
 */
export function warmReady(l: HostLoad, req: PlacementRequest, runtime: string): number {
  if (!req.warm) return 0;
  const pool = l.host.warmPools?.pools.find((p) => p.template === req.warm?.agentTemplate);
  if (!pool || pool.runtime !== runtime || pool.vcpus !== req.vcpus || pool.memoryMb !== req.memoryMb) return 0;
  return Math.max(0, pool.ready - (l.warmTaken ?? 0));
}

/** Pure choice over given loads (exported for tests and for callers holding loads already). */
export function chooseHost(loads: readonly HostLoad[], req: PlacementRequest): Placement {
  let best: { load: HostLoad; runtime: string; warm: boolean; score: number } | undefined;
  for (const l of loads) {
    if (req.hostId && l.host.id !== req.hostId) continue;
    if (req.excludeHostIds?.has(l.host.id)) continue;
    // `wrenn host drain`: its capsules stay, new ones go elsewhere.
    if (l.host.draining) continue;
    const runtime = usableRuntime(l.host, req);
    if (!runtime) continue;
    const warm = warmReady(l, req, runtime) > 0;
    // Its agent said it can take no more capsules (memory, tasks, slots, its maximum...); a claim
    // of a pooled capsule needs nothing more (the agent counts pooled capsules as held already).
    if (l.host.capacity?.full && !warm) continue;
    // A single capsule larger than the whole host can never run there; overcommit beyond that is allowed.
    if (req.vcpus > l.host.cpuCount || req.memoryMb > l.host.memoryMb) continue;
    const score = loadAfter(l, req);
    const better =
      !best ||
      (warm && !best.warm) ||
      (warm === best.warm && (score < best.score || (score === best.score && l.host.id < best.load.host.id)));
    if (better) best = { load: l, runtime, warm, score };
  }
  if (!best) {
    const why = describeNoHost(loads, req);
    const err = new NoHostError(why.message);
    err.full = why.full;
    throw err;
  }
  return { host: best.load.host, runtime: best.runtime };
}

/** Why no host fits; `full` when hosts could run the capsule but every one of them said it is full. */
function describeNoHost(loads: readonly HostLoad[], req: PlacementRequest): { message: string; full: boolean } {
  const drained = loads.find((l) => l.host.id === req.hostId && l.host.draining);
  if (drained) {
    return {
      message: `host ${drained.host.id}, which holds this snapshot template, is drained (wrenn host undrain ${drained.host.id} opens it again)`,
      full: false,
    };
  }
  if (req.hostId && !loads.some((l) => l.host.id === req.hostId)) {
    return {
      message: `host ${req.hostId}, which holds this snapshot template, is not online; bring its agent back or create the capsule from another template`,
      full: false,
    };
  }
  if (loads.length === 0)
    return {
      message: 'no host is online: start a host agent (`wrenn agent`) and register it with the control plane',
      full: false,
    };
  const want = req.runtime ? `the ${req.runtime} runtime` : `one of the runtimes ${req.runtimes?.join(', ')}`;
  const withRuntime = loads.filter((l) => usableRuntime(l.host, req));
  if (withRuntime.length === 0) return { message: `no online host offers ${want}`, full: false };
  const open = withRuntime.filter((l) => !req.excludeHostIds?.has(l.host.id) && !l.host.draining);
  if (open.length === 0 && withRuntime.some((l) => l.host.draining))
    return {
      message: `every online host that offers ${want} is drained or refused this capsule; undrain one (wrenn host undrain <id>) or add a host`,
      full: false,
    };
  const full = open.filter((l) => l.host.capacity?.full);
  if (open.length > 0 && full.length === open.length) {
    const which = req.runtime || req.runtimes?.length ? `every host that offers ${want}` : 'every online host';
    return {
      message: `${which} is full: ${full.map((l) => `${l.host.id}: ${l.host.capacity?.full}`).join('; ')}`,
      full: true,
    };
  }
  return {
    message: `no online host has room for ${req.vcpus} vCPUs and ${req.memoryMb} MiB; ask for less or add a host`,
    full: false,
  };
}

/** Loads the online hosts and picks one; throws NoHostError with a reason when none fits. */
export async function pickHost(db: Kysely<Database>, req: PlacementRequest): Promise<Placement> {
  const loads = await listHostLoads(db, {
    status: 'online',
    ...(req.warm ? { warmTemplate: req.warm.template } : {}),
  });
  return chooseHost(loads, req);
}
