// Where a capsule's port is reached: the capsule's own address when its host agent runs in this
// process's machine (wrenn up), else that agent's /proxy endpoint. Cached per capsule, evicted when
// the capsule goes away or changes state.

import { timingSafeEqual } from 'node:crypto';
import {
  AGENT_SECRET_HEADER,
  type GuestFailure,
  type PinnedTlsOptions,
  pinnedTls,
  proxyFailure,
  sandboxNotFound,
} from '@wrenn/host-agent/client';
import { ENVD_PORT, maskedHost, TRAFFIC_ACCESS_TOKEN_HEADER } from '@wrenn/protocol/contract';
import type { ControlPlaneContext } from '../context.js';
import { isCapsuleId } from '../ids.js';
import { resumeCapsule } from '../services/capsules.js';

export interface ResolvedTarget {
  host: string;
  port: number;
  /** Prepended to the request path (the agent's /proxy/<id>/<P> when going through it). */
  pathPrefix: string;
  /** Headers the hop needs: the agent's secret when going through its /proxy (none direct to a capsule). */
  headers?: Record<string, string>;
  /**
   * The Host the capsule's server must see (maskRequestHost), when it has one. Its requests, like
   * a private capsule's, are looked at one by one (never handed to the relay thread).
   */
  maskHost?: string;
  /** A private capsule's port: each request's token is checked (see ProxyTargets.lookup). */
  guarded?: boolean;
  /** The hop is TLS to the capsule's agent, pinned to the certificate it registered. */
  tls?: PinnedTlsOptions;
}

/** Why a request cannot be proxied, in E2B's shape (guest-errors.ts). */
export type Failure = GuestFailure;

/** What the proxy needs to know of a capsule: its state and where its host (or itself) is reached. */
export interface ProxyTargetInfo {
  state: string;
  hostId: string;
  agentUrl: string;
  /** The secret the host's agent demands (sent as X-Wrenn-Agent-Secret on its /proxy routes). */
  agentSecret?: string | null;
  /** The certificate the host's agent registered (PEM), when it serves TLS. */
  agentTlsCert?: string | null;
  /** The capsule's own address, for capsules of a host agent on this machine. */
  capsuleAddress?: string;
  /** Demanded on its ports when public traffic is off (E2B's allowPublicTraffic: false). */
  trafficToken: string | null;
  /** E2B's maskRequestHost (`${PORT}` for the port). */
  maskRequestHost: string | null;
}

interface Entry extends ProxyTargetInfo {
  at: number;
  /** Paused capsules with auto-resume wake on a request (set from the row; primed entries are running). */
  autoResume?: boolean;
  teamId?: string;
}

const isAsleep = (state: string) => state === 'paused' || state === 'hibernated';

const TTL_MS = 5_000;

export class ProxyTargets {
  private readonly cache = new Map<string, Entry>();
  /** Resumes under way, so a burst of requests to a sleeping capsule wakes it once. */
  private readonly waking = new Map<string, Promise<unknown>>();
  constructor(private readonly ctx: ControlPlaneContext) {}

  evict(capsuleId: string): void {
    this.cache.delete(capsuleId);
  }

  /** Drops the cached routes of every capsule of a host (its agent registered again); returns their ids. */
  evictHost(hostId: string): string[] {
    const ids: string[] = [];
    for (const [id, e] of this.cache) {
      if (e.hostId !== hostId) continue;
      this.cache.delete(id);
      ids.push(id);
    }
    return ids;
  }

  /** Records where a capsule that just started is reached, so its first proxied request needs no lookup. */
  prime(capsuleId: string, t: ProxyTargetInfo): void {
    this.cache.set(capsuleId, { ...t, at: Date.now() });
  }

  /** The answer from the cache alone, when it is fresh (the piped path stays synchronous then). */
  peek(capsuleId: string, port: number, token?: string): ResolvedTarget | Failure | undefined {
    const bad = badPort(port);
    if (bad) return bad;
    const e = this.cache.get(capsuleId);
    if (!e || Date.now() - e.at > TTL_MS) return undefined;
    const refused = trafficRefusal(capsuleId, port, e, token);
    if (refused) return refused;
    if (e.autoResume && isAsleep(e.state)) return undefined; // lookup() wakes it
    return answer(capsuleId, port, e);
  }

  /** Where the port is reached; `token` is the request's e2b-traffic-access-token, if any. */
  async lookup(capsuleId: string, port: number, token?: string, woke = false): Promise<ResolvedTarget | Failure> {
    const bad = badPort(port);
    if (bad) return bad;
    // Header routing takes any string as the id: what cannot be one costs no database lookup.
    if (!isCapsuleId(capsuleId)) return notFound(capsuleId);
    let e = this.cache.get(capsuleId);
    if (!e || Date.now() - e.at > TTL_MS) {
      const row = await this.ctx.database.db
        .selectFrom('capsules')
        .innerJoin('hosts', 'hosts.id', 'capsules.host_id')
        .select([
          'capsules.state as state',
          'capsules.host_id as hostId',
          'hosts.address as agentUrl',
          'hosts.agent_secret as agentSecret',
          'hosts.agent_tls_cert as agentTlsCert',
          'capsules.auto_resume as autoResume',
          'capsules.team_id as teamId',
          'capsules.traffic_access_token as trafficToken',
          'capsules.mask_request_host as maskRequestHost',
        ])
        .where('capsules.id', '=', capsuleId)
        .executeTakeFirst();
      if (!row || row.state === 'stopped') {
        this.cache.delete(capsuleId);
        return notFound(capsuleId);
      }
      e = {
        state: row.state,
        hostId: row.hostId ?? '',
        agentUrl: row.agentUrl,
        agentSecret: row.agentSecret,
        agentTlsCert: row.agentTlsCert,
        autoResume: Number(row.autoResume) !== 0,
        teamId: row.teamId,
        trafficToken: row.trafficToken ?? null,
        maskRequestHost: row.maskRequestHost ?? null,
        at: Date.now(),
      };
      if (this.ctx.localHostIds.has(e.hostId)) {
        const agent = this.ctx.agents.client({
          id: e.hostId,
          address: e.agentUrl,
          agentSecret: e.agentSecret ?? null,
          agentTlsCert: e.agentTlsCert ?? null,
        });
        const cap = await agent.getCapsule({ id: capsuleId }).catch(() => undefined);
        if (cap?.capsule?.address) e.capsuleAddress = cap.capsule.address;
      }
      this.cache.set(capsuleId, e);
    }
    // Before any wake: traffic without a private capsule's token must not resume it.
    const refused = trafficRefusal(capsuleId, port, e, token);
    if (refused) return refused;
    if (e.autoResume && isAsleep(e.state) && e.teamId && !woke) {
      // E2B's autoResume: the request waits while the capsule resumes, then goes through.
      await this.wake(capsuleId, e.teamId);
      this.cache.delete(capsuleId);
      return this.lookup(capsuleId, port, token, true);
    }
    return answer(capsuleId, port, e);
  }

  private async wake(capsuleId: string, teamId: string): Promise<void> {
    let p = this.waking.get(capsuleId);
    if (!p) {
      p = resumeCapsule(this.ctx, teamId, capsuleId).finally(() => this.waking.delete(capsuleId));
      this.waking.set(capsuleId, p);
    }
    // A resume that lost a race (another request or connect() resumed it first) is fine: the
    // lookup after it sees the capsule's state either way.
    await p.catch(() => undefined);
  }
}

const notFound = (capsuleId: string): Failure =>
  sandboxNotFound(capsuleId, `capsule ${capsuleId.slice(0, 80)} not found (it may have been destroyed or timed out)`);

function badPort(port: number): Failure | undefined {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return proxyFailure(400, `port ${port} is out of range (1-65535)`);
  }
  return undefined;
}

/**
 * A private capsule's ports demand its traffic access token (envd's port has its own access token
 * rules); 403 in E2B's shape without it, so nothing about the capsule's state leaks either.
 */
function trafficRefusal(capsuleId: string, port: number, e: Entry, token: string | undefined): Failure | undefined {
  if (!e.trafficToken || port === ENVD_PORT) return undefined;
  const want = Buffer.from(e.trafficToken);
  const given = Buffer.from(token ?? '');
  if (given.length === want.length && timingSafeEqual(given, want)) return undefined;
  return proxyFailure(
    403,
    token === undefined
      ? `capsule ${capsuleId} takes only private traffic: send its trafficAccessToken in the ${TRAFFIC_ACCESS_TOKEN_HEADER} header`
      : `the ${TRAFFIC_ACCESS_TOKEN_HEADER} header does not match capsule ${capsuleId}'s token`,
    capsuleId,
  );
}

function answer(capsuleId: string, port: number, e: Entry): ResolvedTarget | Failure {
  if (e.state === 'paused' || e.state === 'hibernated') {
    return sandboxNotFound(capsuleId, `capsule ${capsuleId} is ${e.state}; resume it to reach port ${port}`);
  }
  if (e.state !== 'running') return sandboxNotFound(capsuleId, `capsule ${capsuleId} is ${e.state}`);
  const guards = {
    ...(e.maskRequestHost ? { maskHost: maskedHost(e.maskRequestHost, port) } : {}),
    ...(e.trafficToken && port !== ENVD_PORT ? { guarded: true } : {}),
  };
  if (e.capsuleAddress) return { host: e.capsuleAddress, port, pathPrefix: '', ...guards };
  const u = new URL(e.agentUrl);
  const secure = u.protocol === 'https:';
  // An https:// agent without a registered certificate is refused rather than trusted blindly.
  if (secure && !e.agentTlsCert)
    return proxyFailure(
      502,
      `host ${e.hostId} serves TLS but registered no certificate to pin; register its agent again`,
      capsuleId,
    );
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || (secure ? 443 : 80)),
    pathPrefix: `/proxy/${capsuleId}/${port}`,
    headers: { [AGENT_SECRET_HEADER]: e.agentSecret ?? '' },
    ...(secure && e.agentTlsCert ? { tls: pinnedTls(e.agentTlsCert) } : {}),
    ...guards,
  };
}
