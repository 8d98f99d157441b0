// Port scanning and forwarding inside a capsule (see forwarder.ts).

export { externalIPv4 } from './addresses.js';
export { type ForwardInfo, type PortForwarder, type PortForwarderOptions, startPortForwarder } from './forwarder.js';
export { parseProcNetTcp, readTcpListeners, type TcpListener } from './proc-net-tcp.js';
