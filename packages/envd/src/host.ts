// What a host needs of envd without loading envd's server: how to start the bundled envd inside a
// capsule, the protocol level it speaks, and the one-port HTTP/1.1 + h2c listener the host agent
// shares with it. A separate entry point from "." because the server pulls in ~300 ms of modules.

export { ENVD_NODE_FLAGS, ENVD_START } from './bundle-layout.js';
export { type DualListener, listenDual } from './net/dual-listener.js';
export { ENVD_PORT, ENVD_VERSION } from './version.js';
