// One TCP port that speaks HTTP/1.1 and cleartext HTTP/2 (h2c with prior knowledge): each
// connection's first bytes are peeked and the socket handed to the matching Node server. With
// `tls` (a remote host agent) the port speaks TLS instead, and ALPN picks the server: h2, else
// HTTP/1.1 (clients that offer no ALPN, like a plain TLS socket, get HTTP/1.1).
import http from 'node:http';
import type http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import type tls from 'node:tls';
import { boundSocket, takeEarlySocket } from './bound-socket.js';

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
  /** Connections open now (accepted, whatever their state): what a slow close() waits for. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function listenDual(
  handler: DualHandler,
  opts: {
    port: number;
    host: string;
    headersTimeoutMs?: number;
    keepAliveTimeoutMs?: number;
    /** Serve TLS with this certificate (PEM, leaf first) and key. */
    tls?: { cert: Buffer; key: Buffer };
  },
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
  // Every accepted connection, from the moment it is accepted: close() ends them all. (Counted
  // only once a TLS handshake finished, a connection mid-handshake at close() escaped, finished its
  // handshake afterwards and was served for as long as its peer kept it: a control plane polling
  // every 2 s kept an agent's close() waiting forever.)
  const sockets = new Set<net.Socket>();
  let closing = false;
  const track = (socket: net.Socket): boolean => {
    if (closing) {
      socket.destroy();
      return false;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    return true;
  };
  const listener = opts.tls
    ? // Loaded only here: envd (plain) never pays for node:tls.
      (createRequire(import.meta.url)('node:tls') as typeof tls).createServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          ALPNProtocols: ['h2', 'http/1.1'],
          handshakeTimeout: opts.headersTimeoutMs ?? 10_000,
          noDelay: true,
        },
        (socket) => {
          // Tracked as a raw connection when accepted (below); ending that ends this one.
          if (closing) socket.destroy();
          else (socket.alpnProtocol === 'h2' ? h2Server() : h1).emit('connection', socket);
        },
      )
    : net.createServer({ noDelay: true }, (socket) => {
        if (!track(socket)) return;
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
  // A failed handshake (a client that does not trust this certificate, a port scan) just closes.
  if (opts.tls) {
    (listener as tls.Server).on('tlsClientError', (_err, socket) => socket.destroy());
    // The raw connection, before its handshake.
    listener.on('connection', (socket: net.Socket) => void track(socket));
  }
  // The socket envd's start.cjs bound and said ready on (in capsules), else one bound by the
  // addon where it can be (see bound-socket.ts), else node's listen.
  const fd = takeEarlySocket(opts.host, opts.port) ?? boundSocket(opts.host, opts.port);
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    if (fd === null) listener.listen({ port: opts.port, host: opts.host }, () => resolve());
    else listener.listen({ fd }, () => resolve());
  });
  const address = listener.address();
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    http1: h1,
    get http2() {
      return h2Server();
    },
    get connections() {
      return sockets.size;
    },
    /** Stops accepting, ends every connection at once (kept-alive, h2, mid-handshake), and resolves when they are gone. */
    async close() {
      closing = true;
      await new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      h1.close();
      h2?.close();
    },
  };
}
