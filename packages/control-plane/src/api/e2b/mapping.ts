// Wrenn capsules as E2B sandboxes. E2B knows two states: starting and running capsules are
// "running"; paused (memory kept) and hibernated (disk kept) ones are "paused".
import { ENVD_VERSION } from '@wrenn/envd/host';
import type { ControlPlaneContext } from '../../context.js';
import type { Capsule, CapsuleState } from '../../db/repositories/capsules.js';
import type { Template as WrennTemplate } from '../../db/repositories/templates.js';
import type { CapsuleMetrics } from '../../services/capsules.js';
import type { ListedSandbox, Sandbox, SandboxDetail, SandboxMetric } from './schemas.js';

/** Every capsule runs this control plane's envd (the SDK gates features on it). */
export const envdVersion = (): string => ENVD_VERSION;

/** Far-future end for capsules without a timeout (E2B always has an end). */
const NO_END = new Date('9999-12-31T23:59:59.000Z');

export const E2B_STATES: Record<'running' | 'paused', readonly CapsuleState[]> = {
  running: ['starting', 'running'],
  paused: ['paused', 'hibernated'],
};

export function e2bState(s: CapsuleState): 'running' | 'paused' {
  return s === 'paused' || s === 'hibernated' ? 'paused' : 'running';
}

/**
 * The SDK builds sandbox host names as <port>-<sandboxID>.<domain> (getHost) and, with
 * E2B_SANDBOX_URL set, sends envd traffic there with E2b-Sandbox-Id/-Port headers: both are routes
 * of our sandbox proxy, so `domain` is the proxy's domain.
 */
export const sandboxDomain = (ctx: ControlPlaneContext): string => ctx.config.domain;

export function toSandbox(ctx: ControlPlaneContext, c: Capsule): Sandbox {
  return {
    templateID: c.template,
    sandboxID: c.id,
    alias: c.template,
    clientID: c.hostId ?? '',
    envdVersion: envdVersion(),
    ...(c.envdAccessToken ? { envdAccessToken: c.envdAccessToken } : {}),
    trafficAccessToken: c.trafficAccessToken,
    domain: sandboxDomain(ctx),
  };
}

export function toListedSandbox(c: Capsule): ListedSandbox {
  return {
    templateID: c.template,
    alias: c.template,
    sandboxID: c.id,
    clientID: c.hostId ?? '',
    startedAt: c.createdAt.toISOString(),
    endAt: (c.expiresAt ?? NO_END).toISOString(),
    cpuCount: c.vcpus,
    memoryMB: c.memoryMb,
    diskSizeMB: 0,
    metadata: c.metadata,
    state: e2bState(c.state),
    envdVersion: envdVersion(),
    volumeMounts: [],
  };
}

export function toSandboxDetail(ctx: ControlPlaneContext, c: Capsule): SandboxDetail {
  return {
    ...toListedSandbox(c),
    ...(c.envdAccessToken ? { envdAccessToken: c.envdAccessToken } : {}),
    allowInternetAccess: c.internet,
    domain: sandboxDomain(ctx),
    lifecycle: { autoResume: c.autoResume, onTimeout: c.timeoutAction === 'kill' ? 'kill' : 'pause' },
    network: {
      allowPublicTraffic: c.trafficAccessToken === null,
      ...(c.maskRequestHost !== null ? { maskRequestHost: c.maskRequestHost } : {}),
    },
  };
}

export function toSandboxMetric(m: CapsuleMetrics): SandboxMetric {
  return {
    timestamp: m.timestamp.toISOString(),
    timestampUnix: Math.floor(m.timestamp.getTime() / 1000),
    cpuCount: m.cpuCount,
    cpuUsedPct: m.cpuUsedPct,
    memUsed: m.memUsedBytes,
    memTotal: m.memTotalBytes,
    memCache: 0,
    diskUsed: m.diskUsedBytes,
    diskTotal: m.diskTotalBytes,
  };
}

export function toE2bTemplate(t: WrennTemplate) {
  const at = t.createdAt.toISOString();
  return {
    templateID: t.teamId === null ? t.name : t.id,
    buildID: t.id,
    cpuCount: t.vcpus,
    memoryMB: t.memoryMb,
    diskSizeMB: Math.ceil(t.sizeBytes / (1 << 20)),
    public: t.teamId === null,
    aliases: [t.name],
    names: [t.name],
    createdAt: at,
    updatedAt: at,
    createdBy: null,
    lastSpawnedAt: null,
    spawnCount: 0,
    buildCount: 1,
    envdVersion: envdVersion(),
    buildStatus: 'ready',
  };
}

/**
 * The `metadata` query of the list endpoints: "k=v&k2=v2" where the SDK URL-encoded each key
 * and value before joining them (so they are decoded once more here).
 */
export function parseMetadataQuery(q: string | undefined): Record<string, string> | undefined {
  if (!q) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(q)) {
    let key = k;
    let value = v;
    try {
      key = decodeURIComponent(k);
      value = decodeURIComponent(v);
    } catch {
      // not percent-encoded: keep as is
    }
    out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
