// Hosts: registration with one-time tokens, heartbeats, and the agent-side registration client.
export { hostRoutes } from './routes.js';
export { HostMonitor, startHostMonitor, type HostMonitorOptions, type HeartbeatRound } from './monitor.js';
export { registerWithControlPlane, RegistrationError, type Registration, type RegisterWithControlPlaneOptions } from './register-client.js';
export { probeHost, probeAddress, type HostInfo } from './probe.js';
export { requireAdmin, apiKeyOf } from './admin-auth.js';
