// Prometheus metrics of the host agent (GET /metrics).
import type http from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { SandboxManager } from './manager/manager.js';

export function createAgentMetrics(manager: SandboxManager) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wrenn_agent_' });
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
      this.set(manager.list().filter((c) => c.state === 'running' || c.state === 'paused').reduce((n, c) => n + c.vcpus, 0));
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
