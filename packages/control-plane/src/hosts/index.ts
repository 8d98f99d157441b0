// Hosts: registration with one-time tokens and heartbeats (the agent's side of registration is
// the host agent's registration/register-client.ts).

export { apiKeyOf, requireAdmin } from './admin-auth.js';
export { type HeartbeatRound, HostMonitor, type HostMonitorOptions, startHostMonitor } from './monitor.js';
export { type HostInfo, probeAddress, probeHost } from './probe.js';
export { hostRoutes } from './routes.js';
