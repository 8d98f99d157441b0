// Admits a host agent that presented a one-time token. The host keeps the id the agent itself
// reports (GetHostInfo.host_id), as `wrenn up` does for its local agent, so logs and the agent's
// /health name the same host. An agent registering again (new token, maybe a new address) keeps
// its record; so does a different agent taking over a known address. Registering again is also how
// an agent's new TLS certificate becomes the pinned one (the token vouches for it).
import type { Kysely } from 'kysely';
import { sha256Hex } from '../auth/hash.js';
import { consumeHostToken } from '../auth/host-tokens.js';
import { DbError } from '../db/errors.js';
import { createHost, getHost, getHostByAddress, type Host, recordHeartbeat } from '../db/repositories/hosts.js';
import type { Database } from '../db/schema.js';
import { isHostId, newHostId } from '../ids.js';

export interface HostRegistration {
  token: string;
  address: string;
  /** The id the agent reports; a fresh one is made when it is missing or malformed. */
  agentHostId?: string;
  runtimes: string[];
  cpuCount: number;
  memoryMb: number;
  /** What the agent demands of callers (checked against it by the caller). */
  agentSecret: string;
  /** The certificate an https:// agent serves (PEM), pinned from now on; null for a plain agent. */
  agentTlsCert: string | null;
}

export async function admitHost(db: Kysely<Database>, r: HostRegistration): Promise<{ host: Host; created: boolean }> {
  return db.transaction().execute(async (trx) => {
    const byId = r.agentHostId && isHostId(r.agentHostId) ? await getHost(trx, r.agentHostId) : null;
    const existing = byId ?? (await getHostByAddress(trx, r.address));
    const hostId = existing?.id ?? (r.agentHostId && isHostId(r.agentHostId) ? r.agentHostId : newHostId());
    if (!(await consumeHostToken(trx, r.token, hostId))) {
      throw new DbError(
        'unauthenticated',
        'host registration token is invalid, expired or already used; ask an admin for a new one (POST /v1/hosts/tokens)',
      );
    }
    const tokenHash = sha256Hex(r.token);
    if (existing) {
      await trx
        .updateTable('hosts')
        .set({
          registration_token_hash: tokenHash,
          address: r.address,
          agent_secret: r.agentSecret,
          agent_tls_cert: r.agentTlsCert,
          status: 'online',
        })
        .where('id', '=', existing.id)
        .execute();
      const host = await recordHeartbeat(trx, existing.id, {
        runtimes: r.runtimes,
        cpuCount: r.cpuCount,
        memoryMb: r.memoryMb,
      });
      return { host: host!, created: false };
    }
    const host = await createHost(trx, {
      id: hostId,
      address: r.address,
      runtimes: r.runtimes,
      cpuCount: r.cpuCount,
      memoryMb: r.memoryMb,
      registrationTokenHash: tokenHash,
      agentSecret: r.agentSecret,
      agentTlsCert: r.agentTlsCert,
    });
    return { host, created: true };
  });
}
