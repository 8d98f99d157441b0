// The host agent process: the sandbox manager behind the HostAgentService Connect service, the
// port proxy and Prometheus metrics, all on one HTTP/1.1 + h2c port (HTTP/1.1 + h2 over TLS with
// `tls`, as a remote agent serves them: auth/agent-tls.ts). Every request but GET /health must
// carry the agent's secret (auth/), checked before anything else looks at it.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import type http2 from 'node:http2';
import { join } from 'node:path';
import type { ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { type DualListener, ENVD_VERSION, listenDual } from '@wrenn/envd/host';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { type AgentSecret, loadAgentSecret } from './auth/agent-secret.js';
import { type AgentTlsSource, loadAgentTls } from './auth/agent-tls.js';
import { createRequestAuth } from './auth/request-auth.js';
import { newHostId } from './host-id.js';
import { SandboxManager } from './manager/manager.js';
import type { ManagerDeps } from './manager/types.js';
import { createAgentMetrics } from './metrics.js';
import { createPortProxy } from './port-proxy.js';
import { hostAgentService } from './service/index.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions extends Omit<ManagerDeps, 'log'> {
  listen: { host: string; port: number };
  log?: ManagerDeps['log'];
  /** The secret callers must present; default WRENN_AGENT_SECRET or <dataDir>/agent-secret. */
  secret?: string;
  /** Serve TLS (a remote agent): a certificate made once under dataDir, or these files. Default plain. */
  tls?: AgentTlsSource;
}

export interface RunningAgent {
  hostId: string;
  port: number;
  url: string;
  /** With TLS: the certificate served (its leaf, PEM) and its SHA-256 fingerprint, for registration. */
  tls?: { certPem: string; fingerprint256: string };
  /** What every caller of `url` presents (Authorization: Bearer <secret>). */
  secret: string;
  /** Where the secret came from (env, file or generated) and the file it is kept in. */
  secretSource: Omit<AgentSecret, 'secret'>;
  manager: SandboxManager;
  /** The HostAgentService implementation it serves (a control plane in this process may call it directly). */
  service: ServiceImpl<typeof HostAgentService>;
  /** Stops serving; capsules keep running (a restarted agent re-adopts them). */
  close(): Promise<void>;
  terminated: Promise<void>;
}

async function loadHostId(dataDir: string): Promise<string> {
  const file = join(dataDir, 'host-id');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const id = newHostId();
    await mkdir(dataDir, { recursive: true });
    await writeFile(file, `${id}\n`, { mode: 0o600 });
    return id;
  }
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const hostId = await loadHostId(opts.dataDir);
  const loaded: AgentSecret = opts.secret
    ? { secret: opts.secret, source: 'env', file: '' }
    : await loadAgentSecret(opts.dataDir);
  const where =
    loaded.source === 'env'
      ? 'the value of WRENN_AGENT_SECRET the agent started with'
      : `in ${loaded.file} on the agent's host (root only)`;
  const auth = createRequestAuth(loaded.secret, where);
  // Before the manager starts: a bad certificate stops the agent before it touches any capsule.
  const tlsMaterial = opts.tls ? loadAgentTls(opts.tls, opts.dataDir, opts.listen.host) : undefined;
  const manager = new SandboxManager(opts);
  await manager.start();
  let onTerminate!: () => void;
  const terminated = new Promise<void>((r) => (onTerminate = r));
  const service = hostAgentService({
    manager,
    hostId,
    version: AGENT_VERSION,
    envdVersion: ENVD_VERSION,
    runtimes: [...opts.runtimes.keys()],
    defaultRuntime: opts.defaultRuntime,
    onTerminate: () => onTerminate(),
  });
  const metrics = createAgentMetrics(manager);
  const proxy = createPortProxy(manager);
  const rpc = connectNodeAdapter({
    routes: (router) => router.service(HostAgentService, service),
    fallback: (req, res) => {
      const url = req.url ?? '/';
      if (proxy.handles(url)) return proxy.handle(req as http.IncomingMessage, res as http.ServerResponse);
      if (url === '/metrics') return void metrics.serve(res as http.ServerResponse);
      if (url === '/health') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'ok', hostId }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: `no route ${url}` } }));
    },
  });
  // /health stays open (it tells only that the agent is up and its host id), for load balancers.
  const guarded = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    const url = req.url ?? '/';
    if (url === '/health' || auth.allows(req.headers, proxy.handles(url))) return rpc(req as never, res as never);
    auth.refuse(res as http.ServerResponse);
  };
  const listener: DualListener = await listenDual(guarded, {
    ...opts.listen,
    headersTimeoutMs: 10_000,
    keepAliveTimeoutMs: 620_000,
    ...(tlsMaterial ? { tls: { cert: tlsMaterial.cert, key: tlsMaterial.key } } : {}),
  });
  listener.http1.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
    if (!auth.allows(req.headers, proxy.handles(req.url ?? ''))) auth.refuseUpgrade(socket);
    else if (proxy.handles(req.url ?? '')) proxy.upgrade(req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
  });
  const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
  return {
    hostId,
    port: listener.port,
    url: `${tlsMaterial ? 'https' : 'http'}://${host}:${listener.port}`,
    ...(tlsMaterial ? { tls: { certPem: tlsMaterial.leafPem, fingerprint256: tlsMaterial.fingerprint256 } } : {}),
    secret: loaded.secret,
    secretSource: { source: loaded.source, file: loaded.file },
    manager,
    service,
    terminated,
    async close() {
      // Connections end at once (a peer that keeps polling does not hold the agent), warm-pool
      // refills are aborted; a slow step says what it still waits for every 5 s.
      const log = opts.log;
      const t0 = Date.now();
      const slow = setInterval(() => {
        const waits = [
          listener.connections > 0 ? `${listener.connections} connection(s) to close` : '',
          manager.warmPoolBootsInFlight() > 0
            ? `${manager.warmPoolBootsInFlight()} warm-pool boot(s) to give back what they made`
            : '',
        ].filter(Boolean);
        log?.('warn', 'host agent shutting down: still waiting', {
          seconds: Math.round((Date.now() - t0) / 1000),
          waitingFor: waits.length > 0 ? waits.join('; ') : 'the sandbox manager to stop',
        });
      }, 5_000);
      try {
        proxy.close();
        await Promise.all([listener.close(), manager.stop()]);
      } finally {
        clearInterval(slow);
      }
    },
  };
}
