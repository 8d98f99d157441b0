// Sandbox hosts (one host agent each): registration, heartbeats, status and load for the scheduler.
import { type Kysely, type Selectable, sql } from 'kysely';
import { newHostId } from '../../ids.js';
import { nonEmpty, nonNegativeInt, oneOf, parseJson, toDate, toDateOrNull } from '../codec.js';
import type { Database, HostsTable } from '../schema.js';
import { ACTIVE_CAPSULE_STATES } from './capsules.js';

export const HOST_STATUSES = ['online', 'unreachable', 'draining'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

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
  /** Drained by an admin: takes no new capsules, keeps its own (independent of `status`). */
  draining?: boolean;
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
  draining: Number(r.draining ?? 0) === 1,
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
    capsule_room: null,
    full_reason: null,
    last_heartbeat_at: now,
    created_at: now,
    draining: 0,
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
}

/**
 * Hosts with what the control plane has placed on them, least loaded first (fewest capsules,
 * then least memory, then id). Computed from the capsules table, so a placement counts at once,
 * before the agent reports it. Filter with `status` (default online) and `runtime`.
 */
export async function listHostLoads(
  db: Kysely<Database>,
  filter: { status?: HostStatus; runtime?: string } = {},
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
  return hosts
    .map((host) => {
      const s = byHost.get(host.id);
      return { host, capsules: Number(s?.n ?? 0), vcpus: Number(s?.vcpus ?? 0), memoryMb: Number(s?.memory_mb ?? 0) };
    })
    .sort((a, b) => a.capsules - b.capsules || a.memoryMb - b.memoryMb || a.host.id.localeCompare(b.host.id));
}
