// The loops that keep the database true while the control plane runs: host heartbeats (every 2 s,
// unreachable after 10 s of silence), the agents' pushed state changes, and the reconciler (every
// 5 s). server.ts starts them after listening, only while this replica holds the leader lease
// (cluster/leader-lease.ts: once across replicas on PostgreSQL), and stops them before closing
// the database.
import type { LeaderLease } from '../cluster/leader-lease.js';
import type { ControlPlaneContext } from '../context.js';
import { HostMonitor, type HostMonitorOptions } from '../hosts/monitor.js';
import { Reconciler, type ReconcilerOptions } from './reconciler.js';
import { AgentStateWatch, type StateWatchOptions } from './state-watch.js';

export interface StateLoops {
  monitor: HostMonitor;
  reconciler: Reconciler;
  watch: AgentStateWatch;
  stop(): Promise<void>;
}

export function startStateLoops(
  ctx: ControlPlaneContext,
  opts: { hosts?: HostMonitorOptions; reconciler?: ReconcilerOptions; watch?: StateWatchOptions } = {},
): StateLoops {
  const monitor = new HostMonitor(ctx, opts.hosts).start();
  const reconciler = new Reconciler(ctx, opts.reconciler).start();
  const watch = new AgentStateWatch(ctx, opts.watch).start();
  return {
    monitor,
    reconciler,
    watch,
    async stop() {
      await Promise.all([monitor.stop(), reconciler.stop(), watch.stop()]);
    },
  };
}

/**
 * The same loops, running only while `lease` is held: started when it is taken, stopped when it is
 * lost (changes are applied one after another, so a quick lose-and-retake cannot overlap two runs).
 */
export function startLeasedStateLoops(
  ctx: ControlPlaneContext,
  lease: LeaderLease,
  opts: { hosts?: HostMonitorOptions; reconciler?: ReconcilerOptions; watch?: StateWatchOptions } = {},
): StateLoops {
  const monitor = new HostMonitor(ctx, opts.hosts);
  const reconciler = new Reconciler(ctx, opts.reconciler);
  const watch = new AgentStateWatch(ctx, opts.watch);
  const stopAll = () => Promise.all([monitor.stop(), reconciler.stop(), watch.stop()]).then(() => {});
  let changes: Promise<void> = Promise.resolve();
  let running = false;
  const off = lease.onChange((held) => {
    changes = changes.then(async () => {
      if (held && !running) {
        monitor.start();
        reconciler.start();
        watch.start();
        running = true;
      } else if (!held && running) {
        running = false;
        await stopAll();
      }
    });
  });
  return {
    monitor,
    reconciler,
    watch,
    async stop() {
      off();
      await changes;
      running = false;
      await stopAll();
    },
  };
}
