// The loops that keep the database true while the control plane runs: host heartbeats (every 2 s,
// unreachable after 10 s of silence), the agents' pushed state changes, and the reconciler (every
// 5 s). server.ts starts them after
// listening and stops them before closing the database.
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
