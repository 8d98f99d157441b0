// One TCP forward: listens on host:port and pipes each connection to target:port (socat's job in E2B).
import net from 'node:net';

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
    server.listen({ host: listenHost, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
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
