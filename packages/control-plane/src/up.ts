// `wrenn up`: the whole system on one machine — control plane, a host agent in the same process
// (still reached through its Connect service, so nothing changes when hosts are split out) and the
// embedded database, all under one data directory. The agent's loopback listener demands its secret
// like any agent's; the in-process calls need none, and the hosts row holds the secret for the
// proxy hop and for WRENN_LOCAL_AGENT_RPC=http.
import { cpus, totalmem } from 'node:os';
import { type RunningAgent, startAgent } from '@wrenn/host-agent/agent';
import { describeCapacity } from '@wrenn/host-agent/capacity/capacity';
import { createLocalLayers, type LocalLayers } from '@wrenn/host-agent/local-providers';
import { agentNetWarmPool, type NetworkOptions } from '@wrenn/host-agent/network/index';
import pino from 'pino';
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

export interface UpOptions {
  dataDir: string;
  listen: { host: string; port: number };
  domain: string;
  databaseUrl?: string;
  /** Key to use as the admin key (WRENN_API_KEY). */
  adminKey?: string;
  /** Network settings of the local agent (tests give each system its own pool). */
  network?: Partial<NetworkOptions>;
  /** Ready capsules kept per template (default none). */
  warmPool?: Record<string, number>;
  /** cgroup parent of the local agent's capsules (default "wrenn"; distinct per agent on one machine). */
  cgroupParent?: string;
  /** Template cache (default <dataDir>/images); tests share one so `base` is built once. */
  imagesDir?: string;
  /** Each namespace capsule's disk in MiB (default WRENN_CAPSULE_DISK_MB, else 10240). */
  capsuleDiskMb?: number;
  /** Capsules the host holds at most and memory it keeps free (default WRENN_MAX_CAPSULES, WRENN_MEMORY_RESERVE_MB). */
  capacity?: { maxCapsules?: number; memoryReserveMb?: number };
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
  layers: LocalLayers;
  close(): Promise<void>;
}

export async function startUp(o: UpOptions): Promise<RunningUp> {
  const log = pino({ level: o.logLevel ?? process.env.WRENN_LOG_LEVEL ?? 'info', base: { svc: 'host-agent' } });
  const layers = await createLocalLayers(o.dataDir, {
    network: { warmPool: agentNetWarmPool(), ...(o.network ?? {}) },
    ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}),
    ...(o.cgroupParent ? { cgroupParent: o.cgroupParent } : {}),
    ...(o.capsuleDiskMb !== undefined ? { diskMb: o.capsuleDiskMb } : {}),
    ...(o.capacity ? { capacity: o.capacity } : {}),
    log,
  });
  const agent = await startAgent({
    ...layers,
    dataDir: o.dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    ...(o.warmPool ? { warmPool: o.warmPool } : {}),
    log: (level, msg, data) => log[level](data ?? {}, msg),
  });
  log.info(
    {
      runtimes: [...layers.runtimes.keys()],
      defaultRuntime: layers.defaultRuntime,
      why: layers.runtimeReasons,
      capacity: describeCapacity(agent.manager.capacity(0, true)),
    },
    'runtimes on this host',
  );
  const cp = await startControlPlane({
    listen: o.listen,
    dataDir: o.dataDir,
    domain: o.domain,
    publicUrl: `http://${o.listen.host}:${o.listen.port}`,
    ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
    ...(o.logLevel ? { logLevel: o.logLevel } : {}),
  });
  const db = cp.ctx.database.db;
  const admin = await ensureAdmin({ db, dataDir: o.dataDir, ...(o.adminKey ? { envKey: o.adminKey } : {}) });

  // The local agent is a host like any other, except that the proxy may skip its hop.
  const existing = await getHost(db, agent.hostId);
  if (!existing) {
    await createHost(db, {
      id: agent.hostId,
      address: agent.url,
      runtimes: [...layers.runtimes.keys()],
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
      log.error({ err: String(err), capsuleId: rec.id }, 'could not record a dead capsule'),
    );
  });

  const ready = async () => {
    if (o.warmMinimal !== false) {
      cp.ctx.readiness.reason = 'building the minimal template';
      await layers.templates.ensure('minimal', o.onProgress);
    }
    cp.ctx.readiness.ready = true;
    cp.ctx.readiness.reason = 'ok';
  };
  await ready();
  const url = `http://${o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host}:${cp.port}`;
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
      await agent.close();
      await layers.close();
    },
  };
}
