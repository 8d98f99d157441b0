// The control plane process: the sandbox proxy in front of everything, then the native and
// E2B-compatible APIs, the docs, metrics and the dashboard, all on one port; plus the loops that
// keep the database true (host heartbeats, reconciler), run by one replica at a time when several
// share a PostgreSQL (cluster/).
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino from 'pino';
import { AgentPool } from './agents/pool.js';
import { registerDashboard } from './api/dashboard.js';
import { e2bErrorHandler } from './api/e2b/errors.js';
import { e2bApi, e2bTemplateUploadApi, e2bVolumeContentApi, isE2bPath } from './api/e2b/index.js';
import {
  bodyPending,
  type EdgeLimits,
  edgeLimitsFromEnv,
  JSON_BODY_LIMIT,
  refuseUpgrade,
  registerEdgeGuards,
  takesUpgrade,
} from './api/edge.js';
import { errorHandler } from './api/errors.js';
import { nativeApi } from './api/native/index.js';
import { CapsuleChanges } from './cluster/capsule-changes.js';
import { LeaderLease } from './cluster/leader-lease.js';
import type { ControlPlaneConfig, ControlPlaneContext } from './context.js';
import { openDatabase } from './db/open.js';
import { listHosts } from './db/repositories/hosts.js';
import { hostRoutes } from './hosts/index.js';
import { pruneRoutes } from './hosts/prune-routes.js';
import { createSandboxProxy } from './proxy/sandbox-proxy.js';
import { type StateLoops, startLeasedStateLoops } from './reconciler/index.js';
import { startFileSetGc } from './templates/file-set-gc.js';
import { conflictingAuthority, refuseConflictingAuthority } from './tls/authority.js';
import { loadTlsMaterial, type TlsSource } from './tls/certificates.js';
import { attachNativeTls, type NativeTlsFront } from './tls/native-front.js';

export interface StartControlPlaneOptions extends ControlPlaneConfig {
  databaseUrl?: string;
  logLevel?: string;
  /** Host heartbeats and the reconciler (default on), while this replica holds the leader lease. */
  stateLoops?: boolean;
  /** GET /health answers 200 while a host is online and not drained (`wrenn server`); else only once `readiness` says so. */
  readyWithHosts?: boolean;
  /** How often a replica without the leader lease tries to take it (default 2000 ms; WRENN_LEASE_RETRY_MS). */
  leaseRetryMs?: number;
  /** Head, body and idle timeouts at the API's edge (default: WRENN_HEADERS_TIMEOUT_MS, WRENN_BODY_TIMEOUT_MS). */
  edge?: Partial<EdgeLimits>;
  /** Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with these certificates instead of plain HTTP. */
  tls?: TlsSource;
}

export interface RunningControlPlane {
  ctx: ControlPlaneContext;
  app: FastifyInstance;
  url: string;
  port: number;
  /** With `tls: 'self-signed'`: the CA certificate clients must trust (NODE_EXTRA_CA_CERTS). */
  caFile?: string;
  /** The state loops (heartbeats, pushed state, reconciler), unless started without them. */
  loops: StateLoops | undefined;
  /** Held by one replica per PostgreSQL (always here on SQLite): that one runs the loops. */
  lease: LeaderLease | undefined;
  close(): Promise<void>;
}

export async function startControlPlane(opts: StartControlPlaneOptions): Promise<RunningControlPlane> {
  const tlsMaterial = opts.tls ? loadTlsMaterial(opts.tls, opts.dataDir, opts.domain) : undefined;
  const log = pino({ level: opts.logLevel ?? process.env.WRENN_LOG_LEVEL ?? 'info', base: { svc: 'control-plane' } });
  const database = await openDatabase({ dataDir: opts.dataDir, databaseUrl: opts.databaseUrl });
  const agents = new AgentPool();
  // TLS sockets and h2 sessions, so close() ends them (Fastify's forceCloseConnections does not
  // know an HTTP/2 server it did not create).
  const secureConns = new Set<{ destroy(): void }>();
  const trackSecure = (secure: http2.Http2SecureServer) => {
    const add = (c: { destroy(): void; once(ev: 'close', fn: () => void): unknown }) => {
      secureConns.add(c);
      c.once('close', () => secureConns.delete(c));
    };
    secure.on('secureConnection', add);
    secure.on('session', add);
  };
  const ctx: ControlPlaneContext = {
    config: { listen: opts.listen, dataDir: opts.dataDir, domain: opts.domain, publicUrl: opts.publicUrl },
    database,
    agents,
    log,
    evictProxy: () => {},
    hostChanged: async () => {},
    primeProxy: () => {},
    localHostIds: new Set(),
    readiness: { ready: false, reason: 'no host agent has registered yet' },
  };
  // Builds cut off by a restart would otherwise show as running forever.
  await database.db
    .updateTable('template_builds')
    .set({
      status: 'error',
      error: 'the control plane restarted during the build; start it again',
      finished_at: Date.now(),
    })
    .where('status', 'in', ['pending', 'building'])
    .execute();
  const edge: EdgeLimits = { ...edgeLimitsFromEnv(), ...opts.edge };
  let tlsFront: NativeTlsFront | undefined;
  const proxy = createSandboxProxy(ctx, { headersTimeoutMs: edge.headersTimeoutMs });
  // Every replica drops its route and connections of a capsule any replica changed.
  const changes = await new CapsuleChanges({
    ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
    db: database.db,
    log: log.child({ part: 'cluster' }),
    onChange: (id) => proxy.evict(id),
    onHostChange: (hostId) => {
      proxy.evictHost(hostId);
      agents.forget(hostId);
    },
  }).start();
  ctx.evictProxy = (id) => {
    proxy.evict(id);
    changes.publish(id);
  };
  ctx.hostChanged = async (hostId) => {
    proxy.evictHost(hostId);
    agents.forget(hostId);
    await changes.publishHost(hostId);
  };
  ctx.primeProxy = (id, target) => proxy.prime(id, target);

  // The proxy sees each request first; only what is not for a capsule reaches the API.
  const app = Fastify({
    // Request lines stay out of the log (warn level); failures are logged by the error handler.
    loggerInstance: log.child({ part: 'api' }, { level: 'warn' }) as unknown as FastifyBaseLogger,
    // JSON bodies are small; uploads and template builds set their own limits.
    bodyLimit: JSON_BODY_LIMIT,
    // Long-lived streams (a background command's output, a terminal) must not keep close() waiting.
    forceCloseConnections: true,
    serverFactory: (handler) => {
      const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
        if (conflictingAuthority(req)) return refuseConflictingAuthority(res);
        if (!proxy.handle(req, res)) handler(req, res);
      };
      // No requestTimeout: uploads may take long; api/edge.ts times bodies per route instead.
      const httpOptions = {
        headersTimeout: edge.headersTimeoutMs,
        connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(edge.headersTimeoutMs / 4))),
        keepAliveTimeout: 620_000,
        requestTimeout: 0,
      };
      if (tlsMaterial) {
        // HTTPS: HTTP/2 for clients that offer it by ALPN (envd's Connect streams), HTTP/1.1 for
        // the others, on the same port; h2 requests reach the same handler as compat objects.
        const secure = http2.createSecureServer(
          {
            key: tlsMaterial.key,
            cert: tlsMaterial.cert,
            allowHTTP1: true,
            settings: { enableConnectProtocol: false },
          },
          onRequest as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
        );
        Object.assign(secure, httpOptions);
        // Streams for capsule ports skip the compat objects (proxy/h2-streams.ts); the compat
        // listener (which the request handler installed) gets the others.
        const compat = secure.listeners('stream') as Array<(...a: unknown[]) => void>;
        secure.removeAllListeners('stream');
        secure.on(
          'stream',
          (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
            if (proxy.handleStream(stream, headers)) return;
            for (const l of compat) l.call(secure, stream, headers, ...rest);
          },
        );
        trackSecure(secure);
        proxy.attach(secure);
        // TLS itself in a native thread; a handshake gets as long as a request head.
        tlsFront = attachNativeTls(secure, tlsMaterial, edge.headersTimeoutMs, log.child({ part: 'tls' }));
        return secure as unknown as http.Server;
      }
      const server = http.createServer(httpOptions, onRequest);
      // The proxy sees every connection first: one whose first request is for a capsule is piped.
      proxy.attach(server);
      return server;
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    // A malformed URL or an over-long path parameter is refused before routing, in the shape of
    // the API the path belongs to.
    frameworkErrors: (err, req, reply) => {
      if (bodyPending(req.raw)) void reply.header('connection', 'close');
      (isE2bPath(req.url) ? e2bErrorHandler : errorHandler)(err, req, reply);
    },
  });
  app.setErrorHandler(errorHandler);
  // Unknown routes answer in the API's error shape, naming what was asked for.
  const noRoute = (req: FastifyRequest, reply: FastifyReply) => {
    void reply.status(404).send({
      error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}; see /docs for the API` },
    });
  };
  app.setNotFoundHandler(noRoute);
  registerEdgeGuards(app, edge, noRoute);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Wrenn API', version: '0.1.0', description: 'Secure sandboxes (capsules) for AI agents' },
      components: { securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } } },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(websocket);
  app.get('/openapi.yaml', { schema: { hide: true } }, async (_req, reply) =>
    reply.type('application/yaml').send(app.swagger({ yaml: true })),
  );
  // The one /health for both APIs (E2B's included): 200 once capsules can be created.
  app.get('/health', { schema: { hide: true } }, async (_req, reply) => {
    if (ctx.readiness.ready) return reply.send({ status: 'ok' });
    // A control plane alone (`wrenn server`, a replica behind a balancer): ready while any host
    // online and not drained can take capsules, asked of the database (hosts come and go).
    if (opts.readyWithHosts) {
      const open = (await listHosts(ctx.database.db, { status: 'online' })).filter((h) => !h.draining);
      if (open.length > 0) return reply.send({ status: 'ok' });
      return reply.status(503).send({
        status: 'starting',
        reason: 'no host agent is online and open to new capsules; start one (`wrenn agent --control-plane`)',
      });
    }
    return reply.status(503).send({ status: 'starting', reason: ctx.readiness.reason });
  });
  // Host registration authenticates with a one-time token, not an API key: outside the native API.
  await app.register(hostRoutes, { ctx });
  await app.register(pruneRoutes, { ctx });
  await app.register(nativeApi, { ctx });
  await app.register(e2bApi, { ctx });
  await app.register(e2bVolumeContentApi, { ctx });
  await app.register(e2bTemplateUploadApi, { ctx });
  registerDashboard(app);
  // WebSocket upgrades for capsule ports go to the proxy; only the others reach Fastify's websocket
  // routes (whose listener would otherwise answer the same upgrade too).
  await app.ready();
  const apiUpgrades = app.server.listeners('upgrade') as ((
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ) => void)[];
  app.server.removeAllListeners('upgrade');
  app.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (proxy.handleUpgrade(req, socket, head)) return;
    if (!takesUpgrade(req.url)) return refuseUpgrade(socket, req.url);
    for (const l of apiUpgrades) l.call(app.server, req, socket, head);
  });
  await app.listen({ host: opts.listen.host, port: opts.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.listen.port;
  ctx.config.listen = { host: opts.listen.host, port };
  const lease =
    opts.stateLoops === false
      ? undefined
      : new LeaderLease({
          ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
          retryMs: opts.leaseRetryMs ?? leaseRetryFromEnv(),
          log: log.child({ part: 'cluster' }),
        });
  const loops: StateLoops | undefined = lease ? startLeasedStateLoops(ctx, lease) : undefined;
  await lease?.start();
  // Every replica keeps its own uploads: each prunes its own (templates/file-set-gc.ts).
  const stopFileSetGc = startFileSetGc(ctx);
  return {
    ctx,
    app,
    port,
    url: `${tlsMaterial ? 'https' : 'http'}://${opts.listen.host}:${port}`,
    ...(tlsMaterial?.caFile ? { caFile: tlsMaterial.caFile } : {}),
    loops,
    lease,
    async close() {
      stopFileSetGc();
      await lease?.stop();
      await loops?.stop();
      await changes.stop();
      proxy.close();
      tlsFront?.close();
      for (const c of secureConns) c.destroy();
      await app.close();
      // Its connections to the agents too (after the API: a request still answered may use them).
      agents.close();
      await database.close();
    },
  };
}

function leaseRetryFromEnv(): number {
  const raw = process.env.WRENN_LEASE_RETRY_MS;
  if (raw === undefined || raw === '') return 2_000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 100 || n > 60_000)
    throw new Error(`WRENN_LEASE_RETRY_MS must be an integer between 100 and 60000 (milliseconds), got "${raw}"`);
  return n;
}
