// What every part of the control plane shares: the database, the agent pool, configuration, logs.
import type { Logger } from 'pino';
import type { AgentPool } from './agents/pool.js';
import type { WrennDatabase } from './db/open.js';
import type { ProxyTargetInfo } from './proxy/targets.js';

export interface ControlPlaneConfig {
  /** host:port the API, proxy and dashboard listen on. */
  listen: { host: string; port: number };
  dataDir: string;
  /** Domain of proxy host names: <port>-<capsuleId>.<domain>. */
  domain: string;
  /** URL users reach the API at (for links and the E2B `domain` field). */
  publicUrl: string;
}

export interface ControlPlaneContext {
  config: ControlPlaneConfig;
  database: WrennDatabase;
  agents: AgentPool;
  log: Logger;
  /** Drops cached proxy routes of a capsule (called when it is destroyed or paused). */
  evictProxy(capsuleId: string): void;
  /**
   * A host's agent registered again (address, secret or certificate may have changed): drops this
   * replica's cached routes and agent client for it and tells every other replica; resolves once
   * they were told (PostgreSQL NOTIFY), so the answer to the registration comes after.
   */
  hostChanged(hostId: string): Promise<void>;
  /** Tells the sandbox proxy where a capsule that just started is reached. */
  primeProxy(capsuleId: string, target: ProxyTargetInfo): void;
  /** Host agents running on this machine: the proxy reaches their capsules directly. */
  localHostIds: Set<string>;
  /** GET /health answers 200 only once capsules can be created (a host online, `minimal` built). */
  readiness: { ready: boolean; reason: string };
}
