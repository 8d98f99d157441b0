// Hosts: registration with one-time tokens, heartbeats, and the agent-side registration client.

export { apiKeyOf, requireAdmin } from './admin-auth.js';
export { type HeartbeatRound, HostMonitor, type HostMonitorOptions, startHostMonitor } from './monitor.js';
export { type HostInfo, probeAddress, probeHost } from './probe.js';
export {
  type RegisterWithControlPlaneOptions,
  type Registration,
  RegistrationError,
  registerWithControlPlane,
} from './register-client.js';
export { hostRoutes } from './routes.js';
