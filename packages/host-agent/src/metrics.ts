// Prometheus metrics of the host agent (GET /metrics).
import type http from 'node:http';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { SandboxManager } from './manager/manager.js';

export function createAgentMetrics(manager: SandboxManager) {
  const registry = new Registry();
  // Lag sampled once a second, not prom-client's default 100 times (each sample wakes the agent).
  collectDefaultMetrics({ register: registry, prefix: 'wrenn_agent_', eventLoopMonitoringPrecision: 1_000 });
  new Gauge({
    name: 'wrenn_agent_capsules',
    help: 'Capsules on this host by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const c of manager.list()) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'wrenn_agent_allocated_vcpus',
    help: 'vCPUs allocated to running and paused capsules',
    registers: [registry],
    collect() {
      this.set(
        manager
          .list()
          .filter((c) => c.state === 'running' || c.state === 'paused')
          .reduce((n, c) => n + c.vcpus, 0),
      );
    },
  });
  // One reading of /proc per scrape, shared by the capacity gauges.
  let report: ReturnType<SandboxManager['capacity']> | undefined;
  new Gauge({
    name: 'wrenn_agent_capsule_room',
    help: 'More capsules this host can take now by its tightest limit (0: creates are refused)',
    registers: [registry],
    collect() {
      report = manager.capacity(0, true);
      this.set(Math.min(report.room, Number.MAX_SAFE_INTEGER));
    },
  });
  new Gauge({
    name: 'wrenn_agent_capacity_used',
    help: 'Use of each limit capsules take from (memory in MiB; tasks, file handles, fds, slots, ranges, capsules in units)',
    labelNames: ['resource'],
    registers: [registry],
    collect() {
      for (const l of (report ?? manager.capacity()).limits) this.set({ resource: l.resource }, l.used);
    },
  });
  new Gauge({
    name: 'wrenn_agent_capacity_max',
    help: 'What each limit allows capsules (the kernel or configured limit less the host reserve)',
    labelNames: ['resource'],
    registers: [registry],
    collect() {
      for (const l of (report ?? manager.capacity()).limits)
        this.set({ resource: l.resource }, Math.min(l.max, Number.MAX_SAFE_INTEGER));
    },
  });
  return {
    registry,
    async serve(res: http.ServerResponse) {
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(body);
    },
  };
}
