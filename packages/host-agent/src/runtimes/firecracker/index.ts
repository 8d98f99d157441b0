// Firecracker: the API client, the call sequences and the runtime (the VMM itself needs KVM; see the README).
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
export {
  createFirecrackerRuntime,
  FirecrackerRuntime,
  type FirecrackerRuntimeOptions,
  type FirecrackerState,
} from './firecracker-runtime.js';
export { configureAndStart, type MicroVmConfig, pauseToSnapshot, restoreWithUffd } from './sequences.js';
export { binaryVersion, parseFirecrackerVersion } from './vmm-process.js';
