// Sandbox hosts (one host agent each): registration, heartbeats, status and load for the scheduler.
import type { WarmPool } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { type Kysely, type Selectable, sql } from 'kysely';
import { newHostId } from '../../ids.js';
import { nonEmpty, nonNegativeInt, oneOf, parseJson, toDate, toDateOrNull } from '../codec.js';
import type { Database, HostsTable } from '../schema.js';
import { ACTIVE_CAPSULE_STATES } from './capsules.js';

export const HOST_STATUSES = ['online', 'unreachable', 'draining'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

/**
 * One template's warm pool on a host, as its agent reported it (GetHostInfo's WarmPool, kept as
 * JSON): template, ready (booted and claimable when the agent answered), target, and the runtime,
 * vcpus and memoryMb a create must ask for to claim one (and no egress policy or volumes).
 */
export type WarmPoolReport = Omit<WarmPool, '$typeName' | '$unknown'>;

export interface HostWarmPools {
  /** When the control plane asked (capsules placed since then may have taken some of `ready`). */
  at: Date;
  pools: WarmPoolReport[];
}

export interface Host {
  id: string;
  /** Base URL of the host agent's Connect service, e.g. http://10.0.0.5:5007. */
  address: string;
  status: HostStatus;
  runtimes: string[];
  cpuCount: number;
  memoryMb: number;
  /** As last reported by the agent. */
  reported: { capsuleCount: number; allocatedVcpus: number; allocatedMemoryMb: number };
  /** The agent's last word on its capacity: more capsules it can take (null: never said) and why none, when full. */
  capacity?: { room: number | null; full: string | null };
  lastHeartbeatAt: Date | null;
  createdAt: Date;
  /** The secret the host's agent demands of every caller; null for a host registered without one. */
  agentSecret: string | null;
  /** The TLS certificate its agent registered (PEM), pinned on every connection; null: plain HTTP. */
  agentTlsCert?: string | null;
  /** Drained by an admin: takes no new capsules, keeps its own (independent of `status`). */
  draining?: boolean;
  /** The agent's last report of its warm pools; null (or absent) before it made one. */
  warmPools?: HostWarmPools | null;
  /** Warm pool sizes an admin set through the API (pushed to the agent); null: the agent's own. */
  warmPoolTarget?: Record<string, number> | null;
}

export interface NewHost {
  id?: string;
  address: string;
  runtimes: string[];
  cpuCount: number;
  memoryMb: number;
  status?: HostStatus;
  /** sha256 hex of the registration token that admitted this host, if any. */
  registrationTokenHash?: string | null;
  agentSecret?: string | null;
  agentTlsCert?: string | null;
}

export const toHost = (r: Selectable<HostsTable>): Host => ({
  id: r.id,
  address: r.address,
  status: r.status as HostStatus,
  runtimes: parseJson<string[]>(r.runtimes, []),
  cpuCount: Number(r.cpu_count),
  memoryMb: Number(r.memory_mb),
  reported: {
    capsuleCount: Number(r.capsule_count),
    allocatedVcpus: Number(r.allocated_vcpus),
    allocatedMemoryMb: Number(r.allocated_memory_mb),
  },
  capacity: {
    room: r.capsule_room === null || r.capsule_room === undefined ? null : Number(r.capsule_room),
    full: r.full_reason || null,
  },
  lastHeartbeatAt: toDateOrNull(r.last_heartbeat_at),
  createdAt: toDate(r.created_at),
  agentSecret: r.agent_secret ?? null,
  agentTlsCert: r.agent_tls_cert ?? null,
  draining: Number(r.draining ?? 0) === 1,
  warmPools: r.warm_pools ? parseWarmPools(r.warm_pools) : null,
  warmPoolTarget: r.warm_pool_target ? parseJson<Record<string, number> | null>(r.warm_pool_target, null) : null,
});

function parseWarmPools(text: string): HostWarmPools | null {
  const j = parseJson<{ at?: number; pools?: WarmPoolReport[] } | null>(text, null);
  if (!j || typeof j.at !== 'number' || !Array.isArray(j.pools)) return null;
  return { at: new Date(j.at), pools: j.pools };
}

const warmPoolsText = (w: HostWarmPools): string =>
  JSON.stringify({
    at: w.at.getTime(),
    pools: w.pools.map((p) => ({
      template: nonEmpty(p.template, 'warm pool template'),
      ready: nonNegativeInt(p.ready, 'warm pool ready'),
      target: nonNegativeInt(p.target, 'warm pool target'),
      runtime: p.runtime,
      vcpus: nonNegativeInt(p.vcpus, 'warm pool vcpus'),
      memoryMb: nonNegativeInt(p.memoryMb, 'warm pool memoryMb'),
    })),
  });

function runtimeList(runtimes: string[]): string {
  if (!Array.isArray(runtimes) || runtimes.some((r) => typeof r !== 'string' || r.length === 0)) {
    throw new TypeError('host runtimes must be an array of runtime names, e.g. ["namespace"]');
  }
  return JSON.stringify(runtimes);
}

export async function createHost(db: Kysely<Database>, input: NewHost): Promise<Host> {
  const now = Date.now();
  const row: Selectable<HostsTable> = {
    id: input.id ?? newHostId(),
    address: nonEmpty(input.address, 'host address'),
    status: oneOf(input.status ?? 'online', HOST_STATUSES, 'host status'),
    runtimes: runtimeList(input.runtimes),
    cpu_count: nonNegativeInt(input.cpuCount, 'cpuCount'),
    memory_mb: nonNegativeInt(input.memoryMb, 'memoryMb'),
    capsule_count: 0,
    allocated_vcpus: 0,
    allocated_memory_mb: 0,
    registration_token_hash: input.registrationTokenHash ?? null,
    agent_secret: input.agentSecret ?? null,
    agent_tls_cert: input.agentTlsCert ?? null,
    capsule_room: null,
    full_reason: null,
    last_heartbeat_at: now,
    created_at: now,
    draining: 0,
    warm_pools: null,
    warm_pool_target: null,
  };
  await db.insertInto('hosts').values(row).execute();
  return toHost(row);
}

export async function getHost(db: Kysely<Database>, id: string): Promise<Host | null> {
  const r = await db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toHost(r) : null;
}

export async function getHostByAddress(db: Kysely<Database>, address: string): Promise<Host | null> {
  const r = await db.selectFrom('hosts').selectAll().where('address', '=', address).executeTakeFirst();
  return r ? toHost(r) : null;
}

export async function listHosts(db: Kysely<Database>, filter: { status?: HostStatus } = {}): Promise<Host[]> {
  let q = db.selectFrom('hosts').selectAll();
  if (filter.status) q = q.where('status', '=', filter.status);
  const rows = await q.orderBy('created_at').orderBy('id').execute();
  return rows.map(toHost);
}

export interface Heartbeat {
  /** Defaults to now. */
  at?: Date;
  /** A heartbeat marks an unreachable host online again; a draining host stays draining. */
  runtimes?: string[];
  cpuCount?: number;
  memoryMb?: number;
  capsuleCount?: number;
  allocatedVcpus?: number;
  allocatedMemoryMb?: number;
  /** From an agent that reports capacity: more capsules it can take, and why none ('' when it has room). */
  capsuleRoom?: number;
  full?: string;
  /** From an agent that reports its warm pools (every current one does, with none: an empty list). */
  warmPools?: HostWarmPools;
}

/** Records a successful contact with the host. Returns the updated host, or null if unknown. */
export async function recordHeartbeat(db: Kysely<Database>, id: string, hb: Heartbeat = {}): Promise<Host | null> {
  const set: Partial<Selectable<HostsTable>> = { last_heartbeat_at: (hb.at ?? new Date()).getTime() };
  if (hb.runtimes) set.runtimes = runtimeList(hb.runtimes);
  if (hb.cpuCount !== undefined) set.cpu_count = nonNegativeInt(hb.cpuCount, 'cpuCount');
  if (hb.memoryMb !== undefined) set.memory_mb = nonNegativeInt(hb.memoryMb, 'memoryMb');
  if (hb.capsuleCount !== undefined) set.capsule_count = nonNegativeInt(hb.capsuleCount, 'capsuleCount');
  if (hb.allocatedVcpus !== undefined) set.allocated_vcpus = nonNegativeInt(hb.allocatedVcpus, 'allocatedVcpus');
  if (hb.allocatedMemoryMb !== undefined)
    set.allocated_memory_mb = nonNegativeInt(hb.allocatedMemoryMb, 'allocatedMemoryMb');
  if (hb.capsuleRoom !== undefined) set.capsule_room = nonNegativeInt(hb.capsuleRoom, 'capsuleRoom');
  if (hb.full !== undefined) set.full_reason = hb.full === '' ? null : hb.full.slice(0, 1000);
  if (hb.warmPools) set.warm_pools = warmPoolsText(hb.warmPools);
  await db
    .updateTable('hosts')
    .set({ ...set, status: sql<string>`case when status = 'unreachable' then 'online' else status end` })
    .where('id', '=', id)
    .execute();
  return getHost(db, id);
}

/** What a host's agent just showed of its capacity (a create it refused, a capsule destroyed), before its next heartbeat. */
export async function setHostCapacity(
  db: Kysely<Database>,
  id: string,
  capacity: { room: number; full: string | null },
): Promise<void> {
  await db
    .updateTable('hosts')
    .set({
      capsule_room: nonNegativeInt(capacity.room, 'capsuleRoom'),
      full_reason: capacity.full ? capacity.full.slice(0, 1000) : null,
    })
    .where('id', '=', id)
    .execute();
}

/** What a host's agent answered about its warm pools outside a heartbeat (after SetWarmPool). */
export async function setHostWarmPools(db: Kysely<Database>, id: string, warmPools: HostWarmPools): Promise<void> {
  await db
    .updateTable('hosts')
    .set({ warm_pools: warmPoolsText(warmPools) })
    .where('id', '=', id)
    .execute();
}

/** The warm pool sizes an admin wants on a host (null: leave them to the agent); null when there is no such host. */
export async function setHostWarmPoolTarget(
  db: Kysely<Database>,
  id: string,
  target: Record<string, number> | null,
): Promise<Host | null> {
  await db
    .updateTable('hosts')
    .set({ warm_pool_target: target ? JSON.stringify(target) : null })
    .where('id', '=', id)
    .execute();
  return getHost(db, id);
}

export async function setHostStatus(db: Kysely<Database>, id: string, status: HostStatus): Promise<Host | null> {
  await db
    .updateTable('hosts')
    .set({ status: oneOf(status, HOST_STATUSES, 'host status') })
    .where('id', '=', id)
    .execute();
  return getHost(db, id);
}

/** Drains a host (no new capsules) or opens it again; null when there is no such host. */
export async function setHostDraining(db: Kysely<Database>, id: string, draining: boolean): Promise<Host | null> {
  await db
    .updateTable('hosts')
    .set({ draining: draining ? 1 : 0 })
    .where('id', '=', id)
    .execute();
  return getHost(db, id);
}

export async function setHostAddress(db: Kysely<Database>, id: string, address: string): Promise<Host | null> {
  await db
    .updateTable('hosts')
    .set({ address: nonEmpty(address, 'host address') })
    .where('id', '=', id)
    .execute();
  return getHost(db, id);
}

export async function setHostAgentSecret(db: Kysely<Database>, id: string, secret: string): Promise<void> {
  await db
    .updateTable('hosts')
    .set({ agent_secret: nonEmpty(secret, 'agent secret') })
    .where('id', '=', id)
    .execute();
}

/** Marks online hosts whose last heartbeat is older than `before` unreachable; returns their ids. */
export async function markStaleHostsUnreachable(db: Kysely<Database>, before: Date): Promise<string[]> {
  const rows = await db
    .updateTable('hosts')
    .set({ status: 'unreachable' })
    .where('status', '=', 'online')
    .where((eb) => eb.or([eb('last_heartbeat_at', 'is', null), eb('last_heartbeat_at', '<', before.getTime())]))
    .returning('id')
    .execute();
  return rows.map((r) => r.id).sort();
}

export async function deleteHost(db: Kysely<Database>, id: string): Promise<boolean> {
  const r = await db.deleteFrom('hosts').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

export interface HostLoad {
  host: Host;
  /** Capsules placed on the host that hold resources (starting, running, paused). */
  capsules: number;
  vcpus: number;
  memoryMb: number;
  /**
   * With listHostLoads' `warmTemplate`: capsules of that template placed on the host since its
   * agent last reported its warm pools (each may have taken a ready one the report still counts).
   */
  warmTaken?: number;
}

/**
 * Hosts with what the control plane has placed on them, least loaded first (fewest capsules,
 * then least memory, then id). Computed from the capsules table, so a placement counts at once,
 * before the agent reports it. Filter with `status` (default online) and `runtime`.
 */
export async function listHostLoads(
  db: Kysely<Database>,
  filter: { status?: HostStatus; runtime?: string; warmTemplate?: string } = {},
): Promise<HostLoad[]> {
  const status = filter.status ?? 'online';
  const hosts = (await listHosts(db, { status })).filter((h) => !filter.runtime || h.runtimes.includes(filter.runtime));
  if (hosts.length === 0) return [];
  const sums = await db
    .selectFrom('capsules')
    .select((eb) => [
      'host_id',
      eb.fn.countAll<number>().as('n'),
      eb.fn.sum<number>('vcpus').as('vcpus'),
      eb.fn.sum<number>('memory_mb').as('memory_mb'),
    ])
    .where(
      'host_id',
      'in',
      hosts.map((h) => h.id),
    )
    .where('state', 'in', [...ACTIVE_CAPSULE_STATES])
    .groupBy('host_id')
    .execute();
  const byHost = new Map(sums.map((s) => [s.host_id, s]));
  const taken = filter.warmTemplate ? await warmTakenByHost(db, hosts, filter.warmTemplate) : undefined;
  return hosts
    .map((host) => {
      const s = byHost.get(host.id);
      return {
        host,
        capsules: Number(s?.n ?? 0),
        vcpus: Number(s?.vcpus ?? 0),
        memoryMb: Number(s?.memory_mb ?? 0),
        ...(taken ? { warmTaken: taken.get(host.id) ?? 0 } : {}),
      };
    })
    .sort((a, b) => a.capsules - b.capsules || a.memoryMb - b.memoryMb || a.host.id.localeCompare(b.host.id));
}

/**
 * Capsules of `template` (as the capsules table names it) placed on each host with a warm pool of
 * it since that host's last report: the report's `ready` less these is what is left to claim. A
 * capsule placed before the report that the agent had already counted is subtracted too, which
 * errs towards a cold create elsewhere, never towards two creates expecting one ready capsule.
 */
async function warmTakenByHost(db: Kysely<Database>, hosts: Host[], template: string): Promise<Map<string, number>> {
  const withPools = hosts.filter((h) => h.warmPools && h.warmPools.pools.length > 0);
  const out = new Map<string, number>();
  if (withPools.length === 0) return out;
  const since = Math.min(...withPools.map((h) => h.warmPools?.at.getTime() ?? 0));
  const rows = await db
    .selectFrom('capsules')
    .select(['host_id', 'created_at'])
    .where(
      'host_id',
      'in',
      withPools.map((h) => h.id),
    )
    .where('template', '=', template)
    .where('created_at', '>=', since)
    .execute();
  const at = new Map(withPools.map((h) => [h.id, h.warmPools?.at.getTime() ?? 0]));
  for (const r of rows) {
    const host = r.host_id ?? '';
    if (Number(r.created_at) >= (at.get(host) ?? Infinity)) out.set(host, (out.get(host) ?? 0) + 1);
  }
  return out;
}
