// Firecracker: the API client and call sequences (the VMM itself needs KVM; see the README).
export {
  type BootSource,
  DEFAULT_TX_RATE_LIMITER,
  type Drive,
  FirecrackerApiError,
  FirecrackerClient,
  type MachineConfig,
  type NetworkInterface,
  type RateLimiter,
  type TokenBucket,
} from './api-client.js';
export { DEFINITIONS, ROUTES, validateDefinition, validateRequest } from './api-schema.js';
export { configureAndStart, type MicroVmConfig, pauseToSnapshot, restoreWithUffd } from './sequences.js';
