// The E2B envd protocol level we implement. The e2b SDK gates features on this version
// (recursive watch 0.1.4, stdin 0.3.0, default user 0.4.0, octet-stream upload 0.5.7,
// file metadata 0.6.2, entry info in watch events 0.6.3, network mounts flag 0.6.4).
export const ENVD_VERSION = '0.6.4';
export { ENVD_PORT } from '@wrenn/protocol/contract';
