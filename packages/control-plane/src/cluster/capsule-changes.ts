// Control-plane replicas on one PostgreSQL each cache where a capsule is reached (the sandbox
// proxy's targets, 5 s) and hold its open proxied connections. When any replica changes a capsule
// (kill, pause, a state the reconciler copied), it NOTIFYs the capsule's id on a channel every
// replica LISTENs to on a connection of its own, and each drops its cached route and, if the
// capsule is gone, its connections - at once instead of after the cache's TTL. A listener that
// loses its connection reconnects every `retryMs`; what it missed meanwhile ages out of the
// cache within its TTL. On SQLite (one process) publishing and listening do nothing.
// A host agent that registers again (a new address or TLS certificate) is announced the same way on
// a second channel: each replica drops every cached route to that host's capsules and its client
// for that agent. The registration is answered only once the announcing replica heard its own
// notification back, so a request for the agent's capsules sent through any replica after that
// answer finds the new address and certificate (see publishHost).
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.js';

export const CAPSULE_CHANGES_CHANNEL = 'wrenn_capsule_changed';
export const HOST_CHANGES_CHANNEL = 'wrenn_host_changed';

export interface CapsuleChangesOptions {
  /** PostgreSQL URL; absent: SQLite, nothing to tell anyone. */
  databaseUrl?: string;
  db: Kysely<Database>;
  log: Logger;
  /** Called with each changed capsule id, including this replica's own changes. */
  onChange: (capsuleId: string) => void;
  /** Called with each host whose agent registered again (address, secret or certificate), this replica's own included. */
  onHostChange?: (hostId: string) => void;
  /** Reconnect delay of the listening connection (default 2000). */
  retryMs?: number;
}

export class CapsuleChanges {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly retryMs: number;
  /** publishHost() calls waiting for their own notification to come back, per host. */
  private readonly hostEchoes = new Map<string, (() => void)[]>();

  constructor(private readonly opts: CapsuleChangesOptions) {
    this.retryMs = opts.retryMs ?? 2_000;
  }

  /** True while this replica listens (always false on SQLite). */
  listening(): boolean {
    return this.client !== undefined;
  }

  /** Starts listening; resolves once the first attempt is done (a failure is retried in the background). */
  async start(): Promise<this> {
    this.stopped = false;
    if (this.opts.databaseUrl) await this.listen();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => {});
  }

  /** Tells every replica (this one included) that a capsule changed; never throws. */
  publish(capsuleId: string): void {
    if (!this.opts.databaseUrl) return;
    void sql`select pg_notify(${CAPSULE_CHANGES_CHANNEL}, ${capsuleId})`
      .execute(this.opts.db)
      .catch((err: unknown) =>
        this.opts.log.warn(
          { capsuleId, err: err instanceof Error ? err.message : String(err) },
          'capsule change not announced to other replicas; their caches expire within 5 s',
        ),
      );
  }

  /**
   * Tells every replica that a host's agent registered again; resolves once this replica's own
   * listening connection heard it back (PostgreSQL signals every listener at the commit, so the
   * others have it by then too, give or take their own event loops), or after 1 s. On SQLite at
   * once. Never throws: a failure is logged, and the other replicas' routes then expire with
   * their cache.
   */
  async publishHost(hostId: string): Promise<void> {
    if (!this.opts.databaseUrl) return;
    let heard: (() => void) | undefined;
    const echo = this.client
      ? new Promise<void>((resolve) => {
          const timer = setTimeout(() => done(), 1_000);
          const done = () => {
            clearTimeout(timer);
            const left = (this.hostEchoes.get(hostId) ?? []).filter((f) => f !== done);
            if (left.length) this.hostEchoes.set(hostId, left);
            else this.hostEchoes.delete(hostId);
            resolve();
          };
          heard = done;
          this.hostEchoes.set(hostId, [...(this.hostEchoes.get(hostId) ?? []), done]);
        })
      : undefined;
    try {
      await sql`select pg_notify(${HOST_CHANGES_CHANNEL}, ${hostId})`.execute(this.opts.db);
    } catch (err) {
      heard?.();
      this.opts.log.warn(
        { hostId, err: err instanceof Error ? err.message : String(err) },
        'host change not announced to other replicas; their cached routes to it expire within 5 s',
      );
    }
    await echo;
  }

  private async listen(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.opts.databaseUrl, keepAlive: true });
    const retry = () => {
      if (this.client === client) this.client = undefined;
      void client.end().catch(() => {});
      if (!this.stopped && !this.timer) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          void this.listen();
        }, this.retryMs);
      }
    };
    client.on('error', (err) => {
      this.opts.log.warn({ err: err.message }, 'capsule changes: listening connection lost; reconnecting');
      retry();
    });
    client.on('end', () => {
      if (!this.stopped) retry();
    });
    client.on('notification', (n) => {
      if (!n.payload) return;
      if (n.channel === CAPSULE_CHANGES_CHANNEL) this.opts.onChange(n.payload);
      else if (n.channel === HOST_CHANGES_CHANNEL) {
        this.opts.onHostChange?.(n.payload);
        for (const done of this.hostEchoes.get(n.payload) ?? []) done();
      }
    });
    try {
      await client.connect();
      await client.query(`listen ${CAPSULE_CHANGES_CHANNEL}; listen ${HOST_CHANGES_CHANNEL}`);
      if (this.stopped) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
    } catch (err) {
      this.opts.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'capsule changes: cannot listen; retrying',
      );
      retry();
    }
  }
}
