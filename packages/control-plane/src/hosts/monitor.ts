// Host heartbeats, pulled: every `intervalMs` the control plane asks each known host agent for
// GetHostInfo. An answer records a heartbeat (and brings an unreachable host back online); a host
// that has not answered for `unreachableAfterMs` is marked unreachable. Pulling means agents need
// no route to the control plane and a restarted control plane knows within one round who is alive.
// Silence is counted from when this monitor started asking: a control plane that was down (a
// restart, a lease that moved) finds old heartbeats in the database, and one slow first answer
// must not make a live host unreachable (and its capsules `error`) before it had the full
// `unreachableAfterMs` to answer.
// Each answer also carries the host's warm pools (recorded for every replica's scheduler); a host
// whose pools differ from the sizes an admin set through the API (a restarted agent starts with
// its own --warm-pool) is told those sizes again (hosts/warm-pool.ts).
import { UnavailableError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import { listHosts, markStaleHostsUnreachable, recordHeartbeat } from '../db/repositories/hosts.js';
import { describeProbeError, probeHost } from './probe.js';
import { reapplyWarmPoolTarget } from './warm-pool.js';

export interface HostMonitorOptions {
  /** Default 2000. */
  intervalMs?: number;
  /** Deadline of one GetHostInfo call. Default 1500. */
  timeoutMs?: number;
  /** Silence after which a host is unreachable. Default 10000. */
  unreachableAfterMs?: number;
}

export interface HeartbeatRound {
  answered: string[];
  failed: string[];
  /** Hosts this round moved from online to unreachable. */
  markedUnreachable: string[];
  /** Hosts this round moved from unreachable back to online. */
  recovered: string[];
}

export class HostMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  /** When this monitor began asking (start(), or the first checkOnce()); silence before it is not counted. */
  private askingSince: number | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unreachableAfterMs: number;

  constructor(
    private readonly ctx: ControlPlaneContext,
    opts: HostMonitorOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 2_000;
    this.timeoutMs = opts.timeoutMs ?? 1_500;
    this.unreachableAfterMs = opts.unreachableAfterMs ?? 10_000;
  }

  start(): this {
    this.stopped = false;
    this.askingSince = Date.now();
    const tick = () => {
      if (this.stopped) return;
      this.running = this.checkOnce()
        .catch((err: unknown) => this.ctx.log.error({ err }, 'host heartbeat round failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One round: ask every host, record answers, mark the silent ones. */
  async checkOnce(): Promise<HeartbeatRound> {
    const askingSince = (this.askingSince ??= Date.now());
    const db = this.ctx.database.db;
    const hosts = await listHosts(db);
    const round: HeartbeatRound = { answered: [], failed: [], markedUnreachable: [], recovered: [] };
    await Promise.all(
      hosts.map(async (h) => {
        try {
          const asked = new Date();
          const info = await probeHost(this.ctx.agents, h, this.timeoutMs);
          await recordHeartbeat(db, h.id, {
            runtimes: info.runtimes.length > 0 ? info.runtimes : undefined,
            cpuCount: info.cpuCount,
            memoryMb: info.memoryMb,
            capsuleCount: info.capsulesRunning,
            allocatedVcpus: info.vcpusAllocated,
            allocatedMemoryMb: info.memoryMbAllocated,
            // An agent without capacity reporting sends neither (proto3 defaults: 0 and ''): unknown, not full.
            ...(info.capsulesHeld > 0 || info.capsuleRoom > 0 || info.full
              ? { capsuleRoom: info.capsuleRoom, full: info.full }
              : {}),
            warmPools: { at: asked, pools: info.warmPools },
          });
          if (h.warmPoolTarget) await reapplyWarmPoolTarget(this.ctx, h, info.warmPools);
          round.answered.push(h.id);
          if (h.status === 'unreachable') {
            round.recovered.push(h.id);
            this.ctx.log.info({ hostId: h.id, address: h.address }, 'host answers again: online');
          }
        } catch (err) {
          round.failed.push(h.id);
          // A broken connection is replaced next time; a slow answer keeps its session (no pile-up).
          if (err instanceof UnavailableError) this.ctx.agents.forget(h.id);
          if (h.status === 'online')
            this.ctx.log.warn(
              { hostId: h.id, address: h.address, err: describeProbeError(err) },
              'host did not answer',
            );
        }
      }),
    );
    const silentSince = Date.now() - this.unreachableAfterMs;
    if (askingSince <= silentSince)
      round.markedUnreachable = await markStaleHostsUnreachable(db, new Date(silentSince));
    for (const id of round.markedUnreachable)
      this.ctx.log.warn({ hostId: id }, `host silent for ${this.unreachableAfterMs} ms: unreachable`);
    return round;
  }
}

export const startHostMonitor = (ctx: ControlPlaneContext, opts?: HostMonitorOptions): HostMonitor =>
  new HostMonitor(ctx, opts).start();
