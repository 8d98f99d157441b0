// One TCP forward: listens on host:port and pipes each connection to target:port (socat's job in E2B).
// Its listening socket is bound like envd's own (net/bound-socket.ts): by the addon, close-on-exec,
// for server.listen({ fd }), so a forward's first listen does not pay node's host resolution (and,
// since Node 22, its IPv6 link-local check); node's listen where the addon cannot do it. A taken
// port is refused with node's EADDRINUSE either way, and the forwarder logs it and retries.
import net from 'node:net';
import { boundSocket } from '../net/bound-socket.js';

export interface TcpForward {
  readonly listenHost: string;
  readonly targetHost: string;
  readonly port: number;
  close(): void;
}

export async function openTcpForward(listenHost: string, port: number, targetHost: string): Promise<TcpForward> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  // allowHalfOpen on both sides so a client's FIN reaches the server and the reply still flows back.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const upstream = net.connect({ host: targetHost, port, allowHalfOpen: true, noDelay: true });
    track(client);
    track(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    // boundSocket throws the bind's error (EADDRINUSE...): this promise rejects with it.
    const fd = boundSocket(listenHost, port);
    if (fd === null) server.listen({ host: listenHost, port, exclusive: true }, listening);
    else server.listen({ fd, exclusive: true }, listening);
  });
  server.on('error', () => {}); // after listening, errors are per connection and handled there
  return {
    listenHost,
    targetHost,
    port,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
