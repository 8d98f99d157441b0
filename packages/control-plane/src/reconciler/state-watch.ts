// Pushed state: one WatchCapsules stream per reachable host carries the changes an agent makes by
// itself (a timeout's pause or destroy, a capsule that died) the moment they happen, so an API read
// right after sees them instead of the old state until the next reconcile (5 s here; E2B's SDK
// reads state right after a timeout). The reconciler stays the safety net: a change made while no
// stream was open is still found by its next round.
import { type CapsuleStateChange, CapsuleState as PbState } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../context.js';
import { transitionCapsule } from '../db/repositories/capsule-transitions.js';
import { getCapsule } from '../db/repositories/capsules.js';
import { type Host, listHosts } from '../db/repositories/hosts.js';
import { recordCapsuleDied } from './capsule-died.js';

export interface StateWatchOptions {
  /** How often the set of watched hosts is brought up to date (default 2 s). */
  everyMs?: number;
}

export class AgentStateWatch {
  private readonly streams = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly everyMs: number;

  constructor(
    private readonly ctx: ControlPlaneContext,
    opts: StateWatchOptions = {},
  ) {
    this.everyMs = opts.everyMs ?? 2_000;
  }

  start(): this {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.sync()
        .catch((err: unknown) => this.ctx.log.error({ err }, 'state watch: listing hosts failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.everyMs);
        });
    };
    tick();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const ac of this.streams.values()) ac.abort();
    this.streams.clear();
  }

  /** Hosts being watched now (tests). */
  watching(): string[] {
    return [...this.streams.keys()];
  }

  /** Opens a stream to each reachable host that has none; closes those of hosts gone or unreachable. */
  private async sync(): Promise<void> {
    const hosts = (await listHosts(this.ctx.database.db)).filter((h) => h.status !== 'unreachable');
    if (this.stopped) return;
    const ids = new Set(hosts.map((h) => h.id));
    for (const [id, ac] of this.streams) {
      if (!ids.has(id)) {
        ac.abort();
        this.streams.delete(id);
      }
    }
    for (const host of hosts) if (!this.streams.has(host.id)) this.watch(host);
  }

  private watch(host: Host): void {
    const ac = new AbortController();
    this.streams.set(host.id, ac);
    void (async () => {
      try {
        const agent = this.ctx.agents.client(host);
        for await (const change of agent.watchCapsules({}, { signal: ac.signal })) {
          if (change.id) await this.apply(host, change);
        }
      } catch (err) {
        // An agent that restarts or goes away ends its stream: the next sync opens a new one.
        if (!ac.signal.aborted) this.ctx.log.debug({ err, hostId: host.id }, 'state watch: stream ended');
      } finally {
        if (this.streams.get(host.id) === ac) this.streams.delete(host.id);
      }
    })();
  }

  private async apply(host: Host, change: CapsuleStateChange): Promise<void> {
    const db = this.ctx.database.db;
    const c = await getCapsule(db, change.id);
    if (!c || c.hostId !== host.id) return;
    if (change.state === PbState.ERROR) {
      await recordCapsuleDied(this.ctx, c.id, change.error || 'the capsule died on its host', 'agent');
      return;
    }
    // What the agent did, when the row asked for it ('hibernate' is a disk-only pause, or a pause
    // where the runtime has none; the reconciler would copy that same state).
    const to =
      change.state === PbState.PAUSED && c.timeoutAction !== 'kill'
        ? 'paused'
        : change.state === PbState.HIBERNATED && c.timeoutAction === 'hibernate'
          ? 'hibernated'
          : change.state === PbState.STOPPED && c.timeoutAction === 'kill'
            ? 'stopped'
            : undefined;
    if (!to) return;
    const changed = await transitionCapsule(
      db,
      c.id,
      to,
      { from: to === 'stopped' ? ['running', 'paused'] : ['running'] },
      {
        kind: to === 'stopped' ? 'capsule.expired' : 'capsule.state_synced',
        data: { by: 'agent', hostId: host.id, from: c.state, to, reason: change.cause },
      },
    );
    if (!changed) return;
    this.ctx.evictProxy(c.id);
    this.ctx.log.info({ capsuleId: c.id, hostId: host.id, to, cause: change.cause }, 'agent pushed a state change');
  }
}
