// envd's listener: one TCP port speaking HTTP/1.1 and cleartext HTTP/2 (h2c, by prior knowledge),
// serving the Connect services (process.Process, filesystem.Filesystem) and the REST routes.

import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { accessTokenInterceptor } from './auth.js';
import { filesystemService } from './filesystem/service.js';
import { envdHeartbeat } from './heartbeat.js';
import { basicRoutes } from './http/basic-routes.js';
import { withBinaryParseErrorsAsInvalid } from './http/binary-parse-errors.js';
import { fileRoutes } from './http/files.js';
import { metricsRoutes } from './http/metrics.js';
import type { Req, Res } from './http/respond.js';
import { createHttpRouter } from './http/router.js';
import { listenDual } from './net/dual-listener.js';
import { OtherProcesses } from './other-processes.js';
import { type PortForwarder, startPortForwarder } from './ports/index.js';
import { type ProcessServiceHandle, processService } from './process/service.js';
import { createStartFastPath } from './rpc-fast/start-fast-path.js';
import { createUnaryFastPath } from './rpc-fast/unary-fast-path.js';
import { type EnvdOptions, EnvdState } from './state.js';

export interface EnvdServer {
  state: EnvdState;
  port: number;
  /** Exposes loopback-only servers on the capsule's address (only when port forwarding is on). */
  ports?: PortForwarder;
  close(): Promise<void>;
}

export async function startEnvd(opts: EnvdOptions): Promise<EnvdServer> {
  const state = new EnvdState(opts);
  const processes: ProcessServiceHandle = processService(state);
  const filesystem = filesystemService(state);
  const routes = (router: ConnectRouter) => {
    router.service(Process, processes.impl);
    router.service(Filesystem, filesystem);
  };
  const rest = createHttpRouter(state, [...basicRoutes(state), ...fileRoutes(state), ...metricsRoutes(state)]);
  // The Connect router is built on the first request the fast paths below do not take (streams
  // other than Start, GETs, compressed bodies, REST routes): ~2 ms of every start otherwise.
  let router: ReturnType<typeof connectNodeAdapter> | undefined;
  const handler = (req: Req, res: Res) => {
    router ??= connectNodeAdapter({
      routes,
      interceptors: [accessTokenInterceptor(state)],
      // Long-lived streams (process output, watches) must not be cut by a default deadline.
      requireConnectProtocolHeader: false,
      fallback: (req, res) => {
        void rest(req as Req, res as unknown as Res);
      },
    });
    router(req as Parameters<typeof router>[0], res as unknown as Parameters<typeof router>[1]);
  };

  // process.Start (envd's hottest call) and unary calls skip connect-es's generic machinery; see rpc-fast/.
  const start = processes.impl.start;
  if (!start) throw new Error('process service has no Start');
  const startFast = createStartFastPath(state, start);
  const unaryFast = createUnaryFastPath(state, [
    { service: Process, impl: processes.impl },
    { service: Filesystem, impl: filesystem },
  ]);
  const connect = withBinaryParseErrorsAsInvalid((req: Req, res: Res) => {
    if (!unaryFast(req, res)) handler(req, res);
  });
  // Every request is activity: envd's heartbeat (port scans) runs at 1 s for a while after it.
  const serve = (req: Req, res: Res) => {
    envdHeartbeat.active();
    if (!startFast(req, res)) connect(req, res);
  };
  const listener = await listenDual(serve as Parameters<typeof listenDual>[0], {
    port: opts.port,
    host: opts.host ?? '0.0.0.0',
  });
  // On inside capsules (the host agent sets WRENN_CAPSULE=1); off for envd run on a host.
  const forwardPorts = opts.portForwarding ?? process.env.WRENN_CAPSULE === '1';
  const ports = forwardPorts
    ? startPortForwarder({ excludePorts: [listener.port], heartbeat: envdHeartbeat })
    : undefined;
  const stopBusy = envdHeartbeat.busyWhile(() => processes.running());
  // Once quiet, the heartbeat sleeps (envd wakes 0 times) unless a process other than init and envd
  // exists: a daemon or background job may start a server at any time, and that wakes no one.
  const others = new OtherProcesses();
  const stopAwake = ports ? envdHeartbeat.awakeWhile(() => others.exist()) : () => undefined;
  return {
    state,
    port: listener.port,
    ports,
    async close() {
      ports?.stop();
      stopBusy();
      stopAwake();
      processes.shutdown();
      await listener.close();
    },
  };
}
