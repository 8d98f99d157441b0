// How many capsules this host can still hold, and whether one more create must be refused. Each
// limit is a table every capsule takes from (memory, task ids, the host's file table, the agent's
// own open files, network slots, uid ranges) or the configured maximum; the host is full as soon
// as one of them has no room for one more capsule, and the refusal names that one and its numbers
// (the disk is checked by the runtime when it makes the capsule's disk: quota-disk.ts). Pure
// arithmetic over readings (host-readings.ts), so it is tested with real /proc inputs.
import type { HostReadings } from './host-readings.js';

export interface CapacityConfig {
  /** Capsules this host holds at most, warm-pool capsules included (WRENN_MAX_CAPSULES); 0 = no fixed count. */
  maxCapsules: number;
  /** Memory kept free for the host itself (WRENN_MEMORY_RESERVE_MB). */
  memoryReserveMb: number;
  /** Host uid/gid ranges, one per capsule (namespace runtime); undefined = not limited by them. */
  idRanges?: number;
  /** Network address slots, one per capsule and per pre-built network; undefined = not limited. */
  netSlots?: number;
  /** Estimates of what one capsule takes, measured on idle `minimal` capsules (see README). */
  perCapsule: {
    /** Memory a capsule needs to start (envd's peak) and, idle, keeps (PSS). */
    startMb: number;
    idleMb: number;
    /** Tasks (threads) of an idle capsule: its init and envd's threads. */
    tasks: number;
    /** File handles of the host's table a capsule holds, and fds the agent keeps open for it. */
    hostFiles: number;
    agentFds: number;
  };
  /** Headroom kept in the shared tables for the host's other processes and the agent's own use. */
  taskReserve: number;
  hostFileReserve: number;
  agentFdReserve: number;
}

export const DEFAULT_MEMORY_RESERVE_MB = 1024;

/**
 * Per-capsule figures from idle `minimal` capsules on the development machine (bench/host-periodic.mjs:
 * 2.2 agent fds each, 3.1 since the metrics history keeps each capsule's cpuacct.usage open;
 * bench/density.mjs: 2.7 before that), rounded up.
 */
export const DEFAULT_PER_CAPSULE: CapacityConfig['perCapsule'] = {
  startMb: 64,
  idleMb: 16,
  tasks: 16,
  hostFiles: 64,
  agentFds: 4,
};

export type CapacityResource =
  | 'capsules'
  | 'memory'
  | 'tasks'
  | 'host_files'
  | 'agent_fds'
  | 'network_slots'
  | 'id_ranges';

export interface CapacityLimit {
  resource: CapacityResource;
  /** In the resource's unit (MiB for memory). */
  used: number;
  max: number;
  /** How many more capsules fit by this limit alone. */
  room: number;
  /** A sentence saying what is full and what to change; set only when room < 1. */
  full?: string;
}

export interface CapacityReport {
  /** Capsules this host holds (warm-pool capsules and those starting included). */
  held: number;
  /** More capsules that fit now by the tightest limit (never negative). */
  room: number;
  /** The limit that refuses one more capsule now, if any. */
  full?: CapacityLimit;
  limits: CapacityLimit[];
}

export interface HeldCounts {
  /** Capsules on the host: the manager's records plus warm-pool capsules (ready or booting). */
  capsules: number;
  /** Network slots taken beyond those capsules (pre-built networks waiting for a create). */
  spareNetworks?: number;
}

const floorRoom = (free: number, per: number) => (per > 0 ? Math.floor(free / per) : Infinity);

export function assessCapacity(r: HostReadings, c: CapacityConfig, held: HeldCounts): CapacityReport {
  const n = held.capsules;
  const p = c.perCapsule;
  const limits: CapacityLimit[] = [];
  const add = (l: Omit<CapacityLimit, 'full'>, full: () => string) => {
    limits.push(l.room < 1 ? { ...l, room: Math.max(0, l.room), full: full() } : l);
  };

  if (c.maxCapsules > 0) {
    add(
      { resource: 'capsules', used: n, max: c.maxCapsules, room: c.maxCapsules - n },
      () => `this host holds ${n} capsules (warm pool included), its maximum (WRENN_MAX_CAPSULES=${c.maxCapsules})`,
    );
  }
  const memFree = r.memAvailableMb - c.memoryReserveMb;
  add(
    {
      resource: 'memory',
      used: r.memTotalMb - r.memAvailableMb,
      max: Math.max(0, r.memTotalMb - c.memoryReserveMb),
      // A start needs startMb now; beyond that each further capsule is counted at its idle size.
      room: memFree < p.startMb ? 0 : 1 + floorRoom(memFree - p.startMb, p.idleMb),
    },
    () =>
      `memory: ${r.memAvailableMb} MiB available, less than the ${c.memoryReserveMb} MiB the host keeps free ` +
      `(WRENN_MEMORY_RESERVE_MB) plus the ${p.startMb} MiB a capsule needs to start`,
  );
  const taskMax = r.taskLimit - c.taskReserve;
  add(
    { resource: 'tasks', used: r.tasks, max: Math.max(0, taskMax), room: floorRoom(taskMax - r.tasks, p.tasks) },
    () =>
      `tasks: ${r.tasks} of ${r.taskLimit} task ids in use (the lower of kernel.pid_max and kernel.threads-max), ` +
      `less than ${c.taskReserve} kept free plus ${p.tasks} for a capsule; raise kernel.pid_max`,
  );
  const fileMax = r.hostFileMax - c.hostFileReserve;
  add(
    {
      resource: 'host_files',
      used: r.hostFiles,
      max: Math.max(0, fileMax),
      room: floorRoom(fileMax - r.hostFiles, p.hostFiles),
    },
    () =>
      `the host's file table: ${r.hostFiles} of fs.file-max ${r.hostFileMax} handles open, ` +
      `less than ${c.hostFileReserve} kept free plus ${p.hostFiles} for a capsule; raise fs.file-max`,
  );
  const fdMax = r.agentFdLimit - c.agentFdReserve;
  add(
    {
      resource: 'agent_fds',
      used: r.agentFds,
      max: Math.max(0, fdMax),
      room: floorRoom(fdMax - r.agentFds, p.agentFds),
    },
    () =>
      `the agent's open files: ${r.agentFds} of its RLIMIT_NOFILE ${r.agentFdLimit}, less than ${c.agentFdReserve} ` +
      `kept free plus ${p.agentFds} for a capsule; start the agent with a higher limit (ulimit -n, LimitNOFILE=)`,
  );
  if (c.netSlots !== undefined) {
    const used = n + (held.spareNetworks ?? 0);
    add(
      { resource: 'network_slots', used, max: c.netSlots, room: c.netSlots - used },
      () =>
        `network slots: ${used} of the ${c.netSlots} /30 slots of the address pool are taken; give WRENN_NET_POOL a larger range`,
    );
  }
  if (c.idRanges !== undefined) {
    add(
      { resource: 'id_ranges', used: n, max: c.idRanges, room: c.idRanges - n },
      () => `uid ranges: all ${c.idRanges} capsule uid/gid ranges are taken (WRENN_CAPSULE_ID_RANGES)`,
    );
  }
  const full = limits.find((l) => l.full !== undefined);
  const room = full ? 0 : Math.min(...limits.map((l) => l.room));
  return { held: n, room: Number.isFinite(room) ? room : Number.MAX_SAFE_INTEGER, ...(full ? { full } : {}), limits };
}

/** "memory 1800/23081, tasks 240/31744, ..., room 1520": each limit's use and what it allows (start-up logs). */
export function describeCapacity(r: CapacityReport): string {
  return [...r.limits.map((l) => `${l.resource} ${l.used}/${l.max}`), `room ${r.room}`].join(', ');
}

/** A non-negative whole number from the environment, or the default; anything else is a start-up error naming the variable. */
export function envCount(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const v = env[name];
  if (v === undefined || v.trim() === '') return fallback;
  if (!/^\d+$/.test(v.trim())) throw new Error(`${name}=${v} must be a whole number (0 or more)`);
  return Number(v.trim());
}

/** The configuration from WRENN_MAX_CAPSULES and WRENN_MEMORY_RESERVE_MB, with the given table sizes. */
export function capacityConfig(
  tables: { idRanges?: number; netSlots?: number },
  given: Partial<Pick<CapacityConfig, 'maxCapsules' | 'memoryReserveMb'>> = {},
  env: NodeJS.ProcessEnv = process.env,
): CapacityConfig {
  return {
    maxCapsules: given.maxCapsules ?? envCount('WRENN_MAX_CAPSULES', 0, env),
    memoryReserveMb: given.memoryReserveMb ?? envCount('WRENN_MEMORY_RESERVE_MB', DEFAULT_MEMORY_RESERVE_MB, env),
    ...(tables.idRanges !== undefined ? { idRanges: tables.idRanges } : {}),
    ...(tables.netSlots !== undefined ? { netSlots: tables.netSlots } : {}),
    perCapsule: DEFAULT_PER_CAPSULE,
    taskReserve: 1024,
    hostFileReserve: 8192,
    agentFdReserve: 256,
  };
}
