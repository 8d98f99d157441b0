// A control plane whose first host is an agent in the same process (`wrenn up`, and the live test
// systems): the agent is still reached through its Connect service shape, so nothing changes when
// hosts are split out. Its loopback listener demands its secret like any agent's; the in-process
// calls need none, and the hosts row holds the secret for the proxy hop and for
// WRENN_LOCAL_AGENT_RPC=http. The agent itself is started by the caller (host agent's startLocalAgent).
import { cpus, totalmem } from 'node:os';
import type { LocalAgent, RunningAgent } from '@wrenn/host-agent';
import { ensureAdmin } from './auth/index.js';
import {
  createHost,
  getHost,
  recordHeartbeat,
  setHostAddress,
  setHostAgentSecret,
  setHostStatus,
} from './db/repositories/hosts.js';
import { recordCapsuleDied } from './reconciler/capsule-died.js';
import { type RunningControlPlane, startControlPlane } from './server.js';
import type { TlsSource } from './tls/certificates.js';

export interface WithLocalAgentOptions {
  /** The agent of this machine, already listening; closed with the control plane. */
  local: LocalAgent;
  dataDir: string;
  listen: { host: string; port: number };
  domain: string;
  /** Serve HTTPS on the listener (server.ts). */
  tls?: TlsSource;
  databaseUrl?: string;
  /** Key to use as the admin key (WRENN_API_KEY). */
  adminKey?: string;
  /** Build `minimal` before reporting ready (default true). */
  warmMinimal?: boolean;
  logLevel?: string;
  /** Progress lines while starting (template builds). */
  onProgress?: (line: string) => void;
}

export interface RunningUp {
  url: string;
  adminKey: string;
  adminKeyCreated: boolean;
  adminKeyFile: string;
  cp: RunningControlPlane;
  agent: RunningAgent;
  layers: LocalAgent['layers'];
  close(): Promise<void>;
}

export async function startWithLocalAgent(o: WithLocalAgentOptions): Promise<RunningUp> {
  const { agent, layers } = o.local;
  const scheme = o.tls ? 'https' : 'http';
  const cp = await startControlPlane({
    listen: o.listen,
    dataDir: o.dataDir,
    domain: o.domain,
    publicUrl: `${scheme}://${o.listen.host}:${o.listen.port}`,
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
    ...(o.logLevel ? { logLevel: o.logLevel } : {}),
  });
  try {
    const admin = await ensureAdmin({
      db: cp.ctx.database.db,
      dataDir: o.dataDir,
      ...(o.adminKey ? { envKey: o.adminKey } : {}),
    });
    await adoptLocalAgent(cp, agent, [...layers.runtimes.keys()]);
    if (o.warmMinimal !== false) {
      cp.ctx.readiness.reason = 'building the minimal template';
      await layers.templates.ensure('minimal', o.onProgress);
    }
    cp.ctx.readiness.ready = true;
    cp.ctx.readiness.reason = 'ok';
    const url = `${scheme}://${o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host}:${cp.port}`;
    cp.ctx.config.publicUrl = url;
    return {
      url,
      adminKey: admin.apiKey,
      adminKeyCreated: admin.source === 'generated',
      adminKeyFile: admin.file,
      cp,
      agent,
      layers,
      async close() {
        await cp.close();
        await o.local.close();
      },
    };
  } catch (err) {
    await cp.close().catch(() => undefined);
    throw err;
  }
}

/** The local agent is a host like any other, except that calls to it stay in the process. */
async function adoptLocalAgent(cp: RunningControlPlane, agent: RunningAgent, runtimes: string[]): Promise<void> {
  const db = cp.ctx.database.db;
  if (!(await getHost(db, agent.hostId))) {
    await createHost(db, {
      id: agent.hostId,
      address: agent.url,
      runtimes,
      cpuCount: cpus().length,
      memoryMb: Math.floor(totalmem() / (1 << 20)),
      status: 'online',
      agentSecret: agent.secret,
    });
  } else {
    await setHostAddress(db, agent.hostId, agent.url);
    await setHostStatus(db, agent.hostId, 'online');
    await setHostAgentSecret(db, agent.hostId, agent.secret);
  }
  await recordHeartbeat(db, agent.hostId, {});
  cp.ctx.localHostIds.add(agent.hostId);
  cp.ctx.agents.setInProcess(agent.hostId, agent.service);
  // A capsule that dies here is in the database as `error` at once, not at the next reconcile.
  agent.manager.onCapsuleExit((rec) => {
    void recordCapsuleDied(cp.ctx, rec.id, rec.error ?? 'the capsule died', 'host-agent').catch((err: unknown) =>
      cp.ctx.log.error({ err: String(err), capsuleId: rec.id }, 'could not record a dead capsule'),
    );
  });
}
