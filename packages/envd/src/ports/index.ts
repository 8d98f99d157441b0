// Port scanning and forwarding inside a capsule (see forwarder.ts).
export { startPortForwarder, type PortForwarder, type PortForwarderOptions, type ForwardInfo } from './forwarder.js';
export { readTcpListeners, parseProcNetTcp, type TcpListener } from './proc-net-tcp.js';
export { externalIPv4 } from './addresses.js';
