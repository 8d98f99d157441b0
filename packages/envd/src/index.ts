export { runEnvdFromCli } from './cli.js';
export { type EnvdServer, startEnvd } from './server.js';
export type { EnvdOptions } from './state.js';
export { ENVD_PORT, ENVD_VERSION } from './version.js';
