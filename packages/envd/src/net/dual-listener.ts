// One TCP port that speaks HTTP/1.1 and cleartext HTTP/2 (h2c with prior knowledge): each
// connection's first bytes are peeked and the socket handed to the matching Node server.
import http from 'node:http';
import type http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';

const H2_PREFACE = 'PRI * HTTP/2.0';

export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface DualListener {
  port: number;
  http1: http.Server;
  /** The h2c server, created on first use (node:http2 and node:tls cost start-up time and memory). */
  readonly http2: http2.Http2Server;
  close(): Promise<void>;
}

export async function listenDual(
  handler: DualHandler,
  opts: { port: number; host: string; headersTimeoutMs?: number; keepAliveTimeoutMs?: number },
): Promise<DualListener> {
  const h1 = http.createServer(
    { keepAliveTimeout: opts.keepAliveTimeoutMs ?? 620_000, headersTimeout: opts.headersTimeoutMs ?? 10_000 },
    handler as http.RequestListener,
  );
  h1.requestTimeout = 0; // uploads and streams may be long
  let h2: http2.Http2Server | undefined;
  const h2Server = (): http2.Http2Server => {
    if (!h2) {
      // Synchronous, so the peeked socket is handed over in the same tick.
      const { createServer } = createRequire(import.meta.url)('node:http2') as typeof http2;
      h2 = createServer({}, handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    }
    return h2;
  };
  const sockets = new Set<net.Socket>();
  const listener = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('readable', function route() {
      const head: Buffer | null = socket.read();
      if (head === null) {
        socket.once('readable', route);
        return;
      }
      socket.unshift(head);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.toString('latin1', 0, n) === H2_PREFACE.slice(0, n);
      (isH2 ? h2Server() : h1).emit('connection', socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ port: opts.port, host: opts.host }, () => resolve());
  });
  const address = listener.address();
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    http1: h1,
    get http2() {
      return h2Server();
    },
    async close() {
      await new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      h1.close();
      h2?.close();
    },
  };
}
