// @wrenn/control-plane: start a control plane (alone, or with this machine's agent as its first
// host) and its first admin key. The live test systems other packages' suites use are "./testing".

export { e2bKeyOf, ensureAdmin } from './auth/index.js';
export { type RunningUp, startWithLocalAgent, type WithLocalAgentOptions } from './local-host.js';
export { type RunningControlPlane, type StartControlPlaneOptions, startControlPlane } from './server.js';
export type { TlsSource } from './tls/certificates.js';
