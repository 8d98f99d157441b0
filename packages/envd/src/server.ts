// envd's listener: one TCP port speaking HTTP/1.1 and cleartext HTTP/2 (h2c, by prior knowledge),
// serving the Connect services (process.Process, filesystem.Filesystem) and the REST routes.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { ConnectRouter } from '@connectrpc/connect';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { EnvdState, type EnvdOptions } from './state.js';
import { accessTokenInterceptor } from './auth.js';
import { createHttpRouter } from './http/router.js';
import { basicRoutes } from './http/basic-routes.js';
import { fileRoutes } from './http/files.js';
import { metricsRoutes } from './http/metrics.js';
import { processService, type ProcessServiceHandle } from './process/service.js';
import { filesystemService } from './filesystem/service.js';
import type { Req, Res } from './http/respond.js';

export interface EnvdServer {
  state: EnvdState;
  port: number;
  close(): Promise<void>;
}

const H2_PREFACE = 'PRI * HTTP/2.0';

export async function startEnvd(opts: EnvdOptions): Promise<EnvdServer> {
  const state = new EnvdState(opts);
  let processes: ProcessServiceHandle | undefined;
  const routes = (router: ConnectRouter) => {
    processes = processService(state);
    router.service(Process, processes.impl);
    router.service(Filesystem, filesystemService(state));
  };
  const rest = createHttpRouter(state, [...basicRoutes(state), ...fileRoutes(state), ...metricsRoutes(state)]);
  const handler = connectNodeAdapter({
    routes,
    interceptors: [accessTokenInterceptor(state)],
    // Long-lived streams (process output, watches) must not be cut by a default deadline.
    requireConnectProtocolHeader: false,
    fallback: (req, res) => {
      void rest(req as Req, res as unknown as Res);
    },
  }) as (req: Req, res: Res) => void;

  const h1 = http.createServer({ keepAliveTimeout: 620_000, headersTimeout: 10_000 }, handler);
  h1.requestTimeout = 0; // uploads and streams may be long
  const h2 = http2.createServer({}, handler);
  const sockets = new Set<net.Socket>();

  // Peek at the first bytes of each connection and hand it to the HTTP/1.1 or HTTP/2 server.
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
      const isH2 = head.toString('latin1', 0, Math.min(head.length, H2_PREFACE.length)) === H2_PREFACE.slice(0, Math.min(head.length, H2_PREFACE.length));
      (isH2 ? h2 : h1).emit('connection', socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' }, () => resolve());
  });
  const address = listener.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    state,
    port,
    async close() {
      processes?.shutdown();
      await new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      h1.close();
      h2.close();
    },
  };
}
