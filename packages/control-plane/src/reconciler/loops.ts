// The loops that keep the database true while the control plane runs: host heartbeats (every 2 s,
// unreachable after 10 s of silence) and the reconciler (every 5 s). server.ts starts them after
// listening and stops them before closing the database.
import type { ControlPlaneContext } from '../context.js';
import { HostMonitor, type HostMonitorOptions } from '../hosts/monitor.js';
import { Reconciler, type ReconcilerOptions } from './reconciler.js';

export interface StateLoops {
  monitor: HostMonitor;
  reconciler: Reconciler;
  stop(): Promise<void>;
}

export function startStateLoops(
  ctx: ControlPlaneContext,
  opts: { hosts?: HostMonitorOptions; reconciler?: ReconcilerOptions } = {},
): StateLoops {
  const monitor = new HostMonitor(ctx, opts.hosts).start();
  const reconciler = new Reconciler(ctx, opts.reconciler).start();
  return {
    monitor,
    reconciler,
    async stop() {
      await Promise.all([monitor.stop(), reconciler.stop()]);
    },
  };
}
