// The reconciler keeps the database true to what the hosts really run. Every `intervalMs`:
//
// - For each reachable host, it compares the capsules the database places there with the agent's
//   ListCapsules:
//   * a capsule the database thinks is on the host but the agent no longer has becomes `stopped`
//     (audit `capsule.expired` when its deadline had passed - the agent enforces TTLs itself and
//     destroys on timeout - else `capsule.lost`);
//   * a state the agent changed on its own (a TTL pause, a resume, an error) is copied into the
//     database (audit `capsule.state_synced`), and so is the agent's deadline; a capsule the agent
//     found dead (`error`: its envd or init exited) is copied in the first round that sees it
//     (audit `capsule.died`, capsule-died.ts);
//   * a capsule the agent runs that the database does not know, or knows as finished, is an orphan
//     and is destroyed on the agent (audit `capsule.orphan_destroyed`).
// - Capsules of an unreachable host go to state `error` with error "host unreachable: ..." (audit
//   `capsule.host_unreachable`); they are not given up: when the host answers again still holding
//   them, their state is restored (audit `capsule.host_recovered`); if it comes back without them
//   they become `stopped`.
//
// - A host where a round found nothing to do is not compared again while neither side changes:
//   the agent's revision (ListCapsules with unless_revision answers `unchanged` and nothing else)
//   and the count and latest update of the host's rows stay the same; at least once a minute it
//   is compared in full anyway. Idle capsules thus cost the reconciler nothing per round.
//
// Races with API calls in flight are avoided three ways: a capsule being created is left alone
// (grace period); a difference between database and agent is acted on only when two consecutive
// rounds saw the same one (an API pause/resume/destroy is between its agent call and its database
// write for milliseconds, not for a whole interval); and every update is a compare-and-set (a row
// changes only if it is still in the state observed).

import { NotFoundError } from '@wrenn/protocol';
import type { Capsule as AgentCapsule } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../context.js';
import { toDate, toDateOrNull } from '../db/codec.js';
import { appendAuditEvent } from '../db/repositories/audit-events.js';
import { transitionCapsule } from '../db/repositories/capsule-transitions.js';
import {
  type Capsule,
  type CapsuleState,
  getCapsule,
  type StateChange,
  updateCapsule,
} from '../db/repositories/capsules.js';
import { type Host, listHosts } from '../db/repositories/hosts.js';
import { recordCapsuleDied } from './capsule-died.js';
import { fromAgentState, HOST_UNREACHABLE_ERROR, isHostUnreachableError, ON_HOST_STATES } from './states.js';

export interface ReconcilerOptions {
  /** Default 5000. */
  intervalMs?: number;
  /** Deadline of each agent call. Default 5000. */
  rpcTimeoutMs?: number;
  /** A `starting` capsule younger than this is being created (templates may build first). Default 15 min. */
  startingGraceMs?: number;
  /** An agent capsule younger than this is never an orphan (its database row may be on its way). Default 30 s. */
  orphanGraceMs?: number;
}

export interface StateSync {
  id: string;
  from: CapsuleState;
  to: CapsuleState;
}

export interface ReconcileReport {
  /** Hosts whose capsules were compared. */
  hostsChecked: string[];
  /** Of those, hosts where nothing had changed on either side since a round that left nothing to do (not compared again). */
  hostsUnchanged: string[];
  /** Reachable hosts whose ListCapsules failed this round (left for the next one). */
  hostsFailed: string[];
  stopped: string[];
  synced: StateSync[];
  orphansDestroyed: string[];
  markedHostUnreachable: string[];
  recovered: string[];
}

const EXPIRES_TOLERANCE_MS = 1_000;
/** A host is compared in full at least this often, even when nothing seems to have changed. */
const FULL_ROUND_EVERY_MS = 60_000;

/** What a round that left nothing to do on a host saw there: while both stay the same, the next round has nothing to do either. */
interface QuietHost {
  agentRevision: bigint;
  dbFingerprint: string;
  at: number;
}

/** What a round compares of each capsule row: read alone, without the rows' metadata and envs JSON. */
type RoundCapsule = Pick<Capsule, 'id' | 'teamId' | 'state' | 'createdAt' | 'expiresAt' | 'error'>;

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  readonly intervalMs: number;
  private readonly rpcTimeoutMs: number;
  private readonly startingGraceMs: number;
  private readonly orphanGraceMs: number;
  /** Differences seen in the last round, by capsule id: acted on when the next round sees them again. */
  private pending = new Map<string, string>();
  private nextPending = new Map<string, string>();
  /**
   * Hosts whose last full round found nothing to do and left nothing waiting (no difference to
   * confirm, no capsule starting, no young orphan). An idle host is then one cheap query on each
   * side per round (the agent's revision, a count and latest update of the database rows), not a
   * comparison of every capsule.
   */
  private readonly quiet = new Map<string, QuietHost>();

  constructor(
    private readonly ctx: ControlPlaneContext,
    opts: ReconcilerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 5_000;
    this.rpcTimeoutMs = opts.rpcTimeoutMs ?? 5_000;
    this.startingGraceMs = opts.startingGraceMs ?? 15 * 60_000;
    this.orphanGraceMs = opts.orphanGraceMs ?? 30_000;
  }

  start(): this {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.reconcileOnce()
        .catch((err: unknown) => this.ctx.log.error({ err }, 'reconcile round failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.intervalMs);
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One full pass over every host. Safe to run concurrently with API calls and other control planes. */
  async reconcileOnce(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      hostsChecked: [],
      hostsUnchanged: [],
      hostsFailed: [],
      stopped: [],
      synced: [],
      orphansDestroyed: [],
      markedHostUnreachable: [],
      recovered: [],
    };
    const hosts = await listHosts(this.ctx.database.db);
    this.nextPending = new Map();
    for (const host of hosts) {
      if (host.status === 'unreachable') await this.markHostLost(host, report);
      else await this.reconcileHost(host, report);
    }
    this.pending = this.nextPending;
    return report;
  }

  /** True when the previous round saw the same difference for this capsule; remembers it otherwise. */
  private confirmed(id: string, difference: string): boolean {
    if (this.pending.get(id) === difference) return true;
    this.nextPending.set(id, difference);
    return false;
  }

  /** A state change and its audit event in one transaction (capsule-transitions.ts). */
  private transition(
    id: string,
    state: CapsuleState,
    change: StateChange,
    kind: string,
    data: Record<string, unknown>,
  ): Promise<Capsule | null> {
    return transitionCapsule(this.ctx.database.db, id, state, change, { kind, data: { by: 'reconciler', ...data } });
  }

  private async audit(
    c: Pick<Capsule, 'id' | 'teamId'> | { id: string; teamId: string | null },
    kind: string,
    data: Record<string, unknown>,
  ): Promise<void> {
    await appendAuditEvent(this.ctx.database.db, {
      teamId: c.teamId,
      capsuleId: c.id,
      kind,
      data: { by: 'reconciler', ...data },
    }).catch((err: unknown) => this.ctx.log.error({ err, capsuleId: c.id, kind }, 'audit event not written'));
  }

  /** Capsules the database places on `hostId` that should exist there (plus those lost with their host). */
  private async capsulesOn(hostId: string): Promise<RoundCapsule[]> {
    const rows = await this.ctx.database.db
      .selectFrom('capsules')
      .select(['id', 'team_id', 'state', 'created_at', 'expires_at', 'error'])
      .where('host_id', '=', hostId)
      .where((eb) =>
        eb.or([
          eb('state', 'in', [...ON_HOST_STATES]),
          eb.and([eb('state', '=', 'error'), eb('error', 'like', `${HOST_UNREACHABLE_ERROR}%`)]),
        ]),
      )
      .execute();
    return rows.map((r) => ({
      id: r.id,
      teamId: r.team_id,
      state: r.state as CapsuleState,
      createdAt: toDate(r.created_at),
      expiresAt: toDateOrNull(r.expires_at),
      error: r.error,
    }));
  }

  private async markHostLost(host: Host, report: ReconcileReport): Promise<void> {
    const since = host.lastHeartbeatAt ? ` since ${host.lastHeartbeatAt.toISOString()}` : '';
    const error = `${HOST_UNREACHABLE_ERROR}: host ${host.id} (${host.address}) has not answered${since}; the capsule comes back if the host does`;
    for (const c of await this.capsulesOn(host.id)) {
      if (c.state === 'error') continue;
      const changed = await this.transition(c.id, 'error', { from: [c.state], error }, 'capsule.host_unreachable', {
        hostId: host.id,
        previousState: c.state,
      });
      if (!changed) continue;
      this.ctx.evictProxy(c.id);
      report.markedHostUnreachable.push(c.id);
    }
  }

  /** Changes whenever a capsule row placed on the host is added, leaves, or is updated. */
  private async dbFingerprint(hostId: string): Promise<string> {
    const r = await this.ctx.database.db
      .selectFrom('capsules')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('updated_at').as('u')])
      .where('host_id', '=', hostId)
      .where((eb) =>
        eb.or([
          eb('state', 'in', [...ON_HOST_STATES]),
          eb.and([eb('state', '=', 'error'), eb('error', 'like', `${HOST_UNREACHABLE_ERROR}%`)]),
        ]),
      )
      .executeTakeFirst();
    return `${Number(r?.n ?? 0)}:${Number(r?.u ?? 0)}`;
  }

  private async reconcileHost(host: Host, report: ReconcileReport): Promise<void> {
    // Read before the agent is asked: a row changed meanwhile changes the next round's fingerprint.
    const dbFingerprint = await this.dbFingerprint(host.id);
    const quiet = this.quiet.get(host.id);
    this.quiet.delete(host.id);
    const mayBeUnchanged =
      quiet !== undefined && quiet.dbFingerprint === dbFingerprint && Date.now() - quiet.at < FULL_ROUND_EVERY_MS;
    let agentCapsules: AgentCapsule[];
    let agentRevision: bigint;
    try {
      const res = await this.ctx.agents
        .client(host)
        .listCapsules(
          { summary: true, unlessRevision: mayBeUnchanged ? quiet.agentRevision : 0n },
          { timeoutMs: this.rpcTimeoutMs },
        );
      agentCapsules = res.capsules;
      agentRevision = res.revision;
      if (res.unchanged && mayBeUnchanged) {
        report.hostsChecked.push(host.id);
        report.hostsUnchanged.push(host.id);
        this.quiet.set(host.id, quiet);
        return;
      }
    } catch (err) {
      report.hostsFailed.push(host.id);
      this.ctx.log.warn(
        { hostId: host.id, err: err instanceof Error ? err.message : String(err) },
        'reconciler: ListCapsules failed; host skipped this round',
      );
      return;
    }
    report.hostsChecked.push(host.id);
    const onAgent = new Map(agentCapsules.map((c) => [c.id, c]));
    const now = Date.now();
    // Anything left for a later round (a difference to confirm, a capsule starting, a young
    // orphan) or done in this one means the next round must compare again.
    let deferred = false;
    const before =
      this.nextPending.size +
      report.stopped.length +
      report.synced.length +
      report.orphansDestroyed.length +
      report.recovered.length;

    for (const c of await this.capsulesOn(host.id)) {
      const a = onAgent.get(c.id);
      onAgent.delete(c.id);
      if (c.state === 'starting' && now - c.createdAt.getTime() < this.startingGraceMs) {
        deferred = true;
        continue;
      }
      if (!a) {
        if (this.confirmed(c.id, `${c.state}->gone`)) await this.capsuleGone(c, host, now, report);
        continue;
      }
      await this.syncState(c, a, host, report);
    }

    // What remains on the agent is not placed on this host by the database: orphans, unless young.
    for (const a of onAgent.values()) {
      const agentState = fromAgentState(a.state);
      if (agentState === 'starting' || now - Number(a.createdAt) < this.orphanGraceMs) {
        deferred = true;
        continue;
      }
      const row = await getCapsule(this.ctx.database.db, a.id);
      // Still wanted: the row was created or moved here after we listed (never destroy those).
      if (row && row.hostId === host.id && ON_HOST_STATES.includes(row.state)) continue;
      if (!this.confirmed(a.id, `orphan:${row?.state ?? 'unknown'}`)) continue;
      try {
        await this.ctx.agents.client(host).destroyCapsule({ id: a.id }, { timeoutMs: this.rpcTimeoutMs * 6 });
      } catch (err) {
        if (!(err instanceof NotFoundError)) {
          this.ctx.log.warn(
            { hostId: host.id, capsuleId: a.id, err: err instanceof Error ? err.message : String(err) },
            'reconciler: orphan not destroyed',
          );
          continue;
        }
      }
      this.ctx.evictProxy(a.id);
      report.orphansDestroyed.push(a.id);
      this.ctx.log.info(
        { hostId: host.id, capsuleId: a.id, dbState: row?.state ?? null },
        'reconciler: destroyed orphan capsule',
      );
      await this.audit({ id: a.id, teamId: row?.teamId ?? null }, 'capsule.orphan_destroyed', {
        hostId: host.id,
        dbState: row?.state ?? null,
        agentState,
      });
    }
    const after =
      this.nextPending.size +
      report.stopped.length +
      report.synced.length +
      report.orphansDestroyed.length +
      report.recovered.length;
    if (!deferred && after === before) this.quiet.set(host.id, { agentRevision, dbFingerprint, at: Date.now() });
  }

  private async capsuleGone(c: RoundCapsule, host: Host, now: number, report: ReconcileReport): Promise<void> {
    const expired = c.expiresAt !== null && c.expiresAt.getTime() <= now + EXPIRES_TOLERANCE_MS;
    const lostWithHost = c.state === 'error';
    const error = lostWithHost ? `capsule was gone when host ${host.id} answered again` : undefined;
    const kind = expired && !lostWithHost ? 'capsule.expired' : 'capsule.lost';
    const changed = await this.transition(c.id, 'stopped', { from: [c.state], ...(error ? { error } : {}) }, kind, {
      hostId: host.id,
      previousState: c.state,
    });
    if (!changed) return;
    this.ctx.evictProxy(c.id);
    report.stopped.push(c.id);
    this.ctx.log.info(
      { capsuleId: c.id, hostId: host.id, previousState: c.state, kind },
      'reconciler: capsule no longer on its host; stopped',
    );
  }

  private async syncState(c: RoundCapsule, a: AgentCapsule, host: Host, report: ReconcileReport): Promise<void> {
    const db = this.ctx.database.db;
    const to = fromAgentState(a.state);
    const agentExpires = Number(a.expiresAt) > 0 ? new Date(Number(a.expiresAt)) : null;
    if (c.state === 'error' && isHostUnreachableError(c.error)) {
      const changed = await this.transition(
        c.id,
        to,
        { from: ['error'], error: to === 'error' ? a.error || 'error on host' : null, expiresAt: agentExpires },
        'capsule.host_recovered',
        { hostId: host.id, state: to },
      );
      if (!changed) return;
      this.ctx.evictProxy(c.id);
      report.recovered.push(c.id);
      return;
    }
    // The agent's `error` is final (its capsule's processes are gone; nothing but destroy follows),
    // so it is copied at once rather than confirmed over two rounds.
    if (to === 'error' && (c.state === 'running' || c.state === 'paused')) {
      if (await recordCapsuleDied(this.ctx, c.id, a.error || 'the capsule failed on its host', 'reconciler'))
        report.synced.push({ id: c.id, from: c.state, to });
      return;
    }
    if (to !== c.state) {
      if (!this.confirmed(c.id, `${c.state}->${to}`)) return;
      const error = to === 'error' ? a.error || 'the capsule failed on its host' : undefined;
      const reason =
        c.state === 'running' &&
        (to === 'paused' || to === 'hibernated') &&
        c.expiresAt &&
        c.expiresAt.getTime() <= Date.now() + EXPIRES_TOLERANCE_MS
          ? 'timeout'
          : 'agent';
      const changed = await this.transition(
        c.id,
        to,
        { from: [c.state], expiresAt: agentExpires, ...(error ? { error } : {}) },
        'capsule.state_synced',
        { hostId: host.id, from: c.state, to, reason },
      );
      if (!changed) return;
      this.ctx.evictProxy(c.id);
      report.synced.push({ id: c.id, from: c.state, to });
      this.ctx.log.info(
        { capsuleId: c.id, hostId: host.id, from: c.state, to, reason },
        'reconciler: state synced from agent',
      );
      return;
    }
    // Same state: keep the deadline the agent enforces (e.g. after a ping or resume elsewhere).
    const dbExpires = c.expiresAt?.getTime() ?? null;
    const agentMs = agentExpires?.getTime() ?? null;
    const differs =
      dbExpires === null || agentMs === null
        ? dbExpires !== agentMs
        : Math.abs(dbExpires - agentMs) > EXPIRES_TOLERANCE_MS;
    if (c.state === 'running' && differs) {
      await updateCapsule(db, c.id, { expiresAt: agentExpires });
    }
  }
}

export const startReconciler = (ctx: ControlPlaneContext, opts?: ReconcilerOptions): Reconciler =>
  new Reconciler(ctx, opts).start();
