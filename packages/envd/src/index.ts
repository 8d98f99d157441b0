export { startEnvd, type EnvdServer } from './server.js';
export { ENVD_VERSION, ENVD_PORT } from './version.js';
export type { EnvdOptions } from './state.js';
