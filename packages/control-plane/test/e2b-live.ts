// A live Wrenn for tests: `wrenn up` (control plane + in-process host agent with the namespace
// runtime) on SQLite or a throwaway PostgreSQL, optional extra host agents in the same process,
// and the options the official e2b SDK needs to talk to it. Every piece is torn down by close():
// capsules (processes, cgroups, overlays), network namespaces, veths, iptables chains, data dirs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AgentTlsSource,
  type CapsuleRuntime,
  type LocalLayers,
  NamespaceRuntime,
  NetworkManager,
  networkProvider,
  type RunningAgent,
  type RuntimeName,
  startAgent,
  startMetadataHttpServer,
  TemplateStore,
  templateProvider,
} from '@wrenn/host-agent';
import pino from 'pino';
import { e2bKeyOf } from '../src/auth/api-keys.js';
import type { RunningUp } from '../src/local-host.js';
import { type StateLoops, startStateLoops } from '../src/reconciler/index.js';
import { type RunningControlPlane, startControlPlane } from '../src/server.js';
import {
  agentCgroupParent,
  removeCgroupParent,
  removeTeamTemplates,
  SHARED_IMAGES,
  slotNetwork,
  startTestUp,
  type TestUpOptions,
} from '../src/testing/live-up.js';
import { startTestPostgres, type TestPostgres } from './pg.js';

export type DbKind = 'sqlite' | 'postgres';

/** Network slot 0..15 of a test system (see testing/live-up.ts for which suite uses which). */
export const testNetwork = slotNetwork;

/** Whether QEMU is installed (the QEMU suites skip without it). */
export const hasQemu = ((): boolean => {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * The layers of a further agent on this machine: like createLocalLayers, plus a cgroup parent of
 * its own. Agents sharing a parent would each treat the others' capsules as stale leftovers and
 * kill them when they start.
 */
async function createAgentLayers(
  dataDir: string,
  slot: number,
  imagesDir: string,
  ociDir?: string,
): Promise<LocalLayers> {
  const templateStore = new TemplateStore({ imagesDir });
  const networkManager = new NetworkManager({ dataDir, ...testNetwork(slot) } as ConstructorParameters<
    typeof NetworkManager
  >[0]);
  await networkManager.init();
  const metadataServer = await startMetadataHttpServer({
    port: networkManager.metadataPort,
    host: '0.0.0.0',
    lookup: (a) => networkManager.metadataFor(a),
  });
  const ns = new NamespaceRuntime({ dataDir, templates: templateStore, cgroupParent: agentCgroupParent(slot) });
  await ns.prepare();
  return {
    runtimes: new Map<RuntimeName, CapsuleRuntime>([['namespace', ns]]),
    defaultRuntime: 'namespace',
    network: networkProvider(networkManager),
    templates: ociDir ? templateProvider(templateStore, ['namespace'], ociDir) : templateProvider(templateStore),
    templateStore,
    networkManager,
    metadataServer,
    close: () => metadataServer.close(),
  };
}

let pgServer: Promise<TestPostgres> | undefined;

/** One PostgreSQL server per test process; each system gets a fresh database on it. */
async function postgresUrl(): Promise<string> {
  pgServer ??= startTestPostgres();
  return (await pgServer).createDatabase();
}

export async function stopPostgres(): Promise<void> {
  const s = pgServer;
  pgServer = undefined;
  if (s) await (await s).stop();
}

export interface ExtraAgent {
  agent: RunningAgent;
  layers: LocalLayers;
  dataDir: string;
  slot: number;
  /** Stops serving; its capsules keep running (as when the agent process dies). */
  stop(): Promise<void>;
  /** Starts serving again from the same data dir (re-adopting capsules), on the same port. */
  restart(): Promise<void>;
  /** Destroys its capsules and removes everything it made. */
  destroy(): Promise<void>;
}

export interface LiveSystem {
  up: RunningUp;
  /** The control plane currently serving (replaced by restartControlPlane). */
  cp: RunningControlPlane;
  url: string;
  adminKey: string;
  dataDir: string;
  databaseUrl?: string;
  /** Options for every e2b SDK call (apiUrl, sandboxUrl, apiKey: the admin key's e2b_ form unless given). */
  sdk(apiKey?: string): { apiKey: string; apiUrl: string; sandboxUrl: string; requestTimeoutMs: number };
  /**
   * A further host agent in this process with its own data dir and network slot. It reads the main
   * system's template cache, unless `ownTemplates`: then it has a template cache and a container
   * image cache of its own (image templates of one name made by two agents in one template
   * directory would replace each other). With `tls` it serves TLS, as `wrenn agent` does.
   */
  startExtraAgent(slot: number, opts?: { ownTemplates?: boolean; tls?: AgentTlsSource }): Promise<ExtraAgent>;
  /** Closes the control plane and starts a new one on the same database (the agent keeps running). */
  restartControlPlane(): Promise<void>;
  close(): Promise<void>;
}

const quietLog = pino({ level: process.env.WRENN_TEST_LOG ?? 'silent' });
const agentLog = (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) =>
  quietLog[level](data ?? {}, msg);

/** The template cache the live suites share, so `base` (debootstrap, a minute or more) is built once per machine. */
export { SHARED_IMAGES };

export async function startLive(o: {
  db: DbKind;
  slot: number;
  imagesDir?: string;
  capacity?: TestUpOptions['capacity'];
  network?: TestUpOptions['network'];
  warmPool?: TestUpOptions['warmPool'];
}): Promise<LiveSystem> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-live-'));
  const databaseUrl = o.db === 'postgres' ? await postgresUrl() : undefined;
  const domain = 'wrenn.test';
  let up: RunningUp;
  try {
    up = await startTestUp({
      dataDir,
      slot: o.slot,
      domain,
      ...(databaseUrl ? { databaseUrl } : {}),
      // Without one of its own, a template cache in the data dir (as `wrenn up` keeps).
      imagesDir: o.imagesDir ?? join(dataDir, 'images'),
      ...(o.capacity ? { capacity: o.capacity } : {}),
      ...(o.network ? { network: o.network } : {}),
      ...(o.warmPool ? { warmPool: o.warmPool } : {}),
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const extras: ExtraAgent[] = [];
  let cpClosed = false;
  // WRENN_TEST_STATE_LOOPS=1 also runs the heartbeat and reconciler loops in the background, as a
  // server that starts them does: the suites must pass either way.
  const withLoops = process.env.WRENN_TEST_STATE_LOOPS === '1';
  let loops: StateLoops | undefined = withLoops ? startStateLoops(up.cp.ctx) : undefined;
  const sys: LiveSystem = {
    up,
    cp: up.cp,
    url: up.url,
    adminKey: up.adminKey,
    dataDir,
    ...(databaseUrl ? { databaseUrl } : {}),
    sdk: (apiKey) => ({
      // As a user of the e2b SDK passes it: the key's e2b_ form, which the SDK's own check accepts.
      apiKey: apiKey ?? e2bKeyOf(sys.adminKey),
      apiUrl: sys.url,
      sandboxUrl: sys.url,
      requestTimeoutMs: 120_000,
    }),
    async startExtraAgent(slot, opts = {}) {
      const dir = mkdtempSync(join(tmpdir(), 'wrenn-agent-'));
      // Templates come from the main system's image cache (built once per run), unless its own.
      const mk = async (port: number) => {
        const layers = opts.ownTemplates
          ? await createAgentLayers(dir, slot, join(dir, 'images'), join(dir, 'oci'))
          : await createAgentLayers(dir, slot, o.imagesDir ?? join(dataDir, 'images'));
        try {
          const agent = await startAgent({
            ...layers,
            dataDir: dir,
            listen: { host: '127.0.0.1', port },
            ...(opts.tls ? { tls: opts.tls } : {}),
            log: agentLog,
          });
          return { layers, agent };
        } catch (err) {
          await layers.close().catch(() => undefined);
          await layers.networkManager.removeAll().catch(() => undefined);
          throw err;
        }
      };
      let cur: Awaited<ReturnType<typeof mk>>;
      try {
        cur = await mk(0);
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      let serving = true;
      let destroyed = false;
      const port = cur.agent.port;
      const extra: ExtraAgent = {
        get agent() {
          return cur.agent;
        },
        get layers() {
          return cur.layers;
        },
        dataDir: dir,
        slot,
        async stop() {
          if (!serving) return;
          serving = false;
          await cur.agent.close();
          await cur.layers.close();
        },
        async restart() {
          await extra.stop();
          cur = await mk(port);
          serving = true;
        },
        async destroy() {
          // Once (sys.close() destroys every extra agent, a test may have already).
          if (destroyed) return;
          destroyed = true;
          // A stopped agent is started again to take its capsules back (stop() below closes it).
          if (!serving) {
            cur = await mk(port);
            serving = true;
          }
          await cur.agent.manager.destroyAll();
          await extra.stop();
          await cur.layers.networkManager.removeAll().catch(() => undefined);
          removeCgroupParent(slot);
          rmSync(dir, { recursive: true, force: true });
        },
      };
      extras.push(extra);
      return extra;
    },
    async restartControlPlane() {
      await loops?.stop();
      await sys.cp.close();
      cpClosed = true;
      const cp = await startControlPlane({
        listen: { host: '127.0.0.1', port: 0 },
        dataDir,
        domain,
        publicUrl: 'http://127.0.0.1',
        ...(databaseUrl ? { databaseUrl } : {}),
        logLevel: process.env.WRENN_TEST_LOG ?? 'silent',
      });
      cp.ctx.localHostIds.add(up.agent.hostId);
      cp.ctx.readiness.ready = true;
      cp.ctx.readiness.reason = 'ok';
      cpClosed = false;
      sys.cp = cp;
      sys.url = cp.url;
      cp.ctx.config.publicUrl = cp.url;
      if (withLoops) loops = startStateLoops(cp.ctx);
    },
    async close() {
      const errors: unknown[] = [];
      const step = async (fn: () => Promise<unknown>) => fn().catch((e: unknown) => errors.push(e));
      await step(async () => loops?.stop());
      for (const x of extras) await step(() => x.destroy());
      await step(() => up.agent.manager.destroyAll());
      if (!cpClosed) {
        await step(() => removeTeamTemplates(sys.cp.ctx.database.db, up.agent.manager.templates()));
        await step(() => sys.cp.close());
      }
      await step(() => up.agent.close());
      await step(() => up.layers.close());
      await step(() => up.layers.networkManager.removeAll());
      removeCgroupParent(o.slot);
      rmSync(dataDir, { recursive: true, force: true });
      if (errors.length > 0) throw new AggregateError(errors, 'live system cleanup had errors');
    },
  };
  return sys;
}

/** GET through the sandbox proxy with a Host header (what a browser sends for getHost(port) URLs). */
export function getViaHost(
  proxyUrl: string,
  hostHeader: string,
  path = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const u = new URL(proxyUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: Number(u.port),
        path,
        method: 'GET',
        headers: { host: hostHeader, ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Polls `fn` until it returns a value other than undefined, or fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
