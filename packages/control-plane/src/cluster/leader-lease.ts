// Periodic work (host heartbeats, reconciler, pushed-state streams) must run once across
// control-plane replicas. On PostgreSQL the holder of a session-level advisory lock does it: the
// lock is taken on a connection of its own, so when the holder dies (or its connection does)
// PostgreSQL releases the lock and another replica, retrying every `retryMs`, takes it within
// seconds. The holder checks its connection at the same pace and gives the lease up the moment the
// connection fails. On SQLite there is one process: the lease is always held.

import pg from 'pg';
import type { Logger } from 'pino';

/** Advisory lock key of the state loops (any fixed 64-bit number; "wrenn" in ASCII). */
export const STATE_LOOPS_LOCK_KEY = 0x7772656e6en;

export interface LeaderLeaseOptions {
  /** PostgreSQL URL; absent: SQLite, the lease is always held. */
  databaseUrl?: string;
  /** Advisory lock key (default STATE_LOOPS_LOCK_KEY). */
  key?: bigint;
  /** How often a follower tries to take the lease and the holder checks its connection (default 2000). */
  retryMs?: number;
  log: Logger;
}

type Listener = (held: boolean) => void;

export class LeaderLease {
  private client: pg.Client | undefined;
  private holding = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private round: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<Listener>();
  readonly retryMs: number;
  private readonly key: bigint;

  constructor(private readonly opts: LeaderLeaseOptions) {
    this.retryMs = opts.retryMs ?? 2_000;
    this.key = opts.key ?? STATE_LOOPS_LOCK_KEY;
  }

  /** True while this process should do the periodic work. */
  held(): boolean {
    return this.holding;
  }

  /** Called on every change of `held()` (also right away when it is already held). */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    if (this.holding) fn(true);
    return () => this.listeners.delete(fn);
  }

  /** Tries at once, then every `retryMs`. Resolves after the first attempt. */
  async start(): Promise<this> {
    this.stopped = false;
    if (!this.opts.databaseUrl) {
      this.set(true);
      return this;
    }
    await this.tick();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.round;
    await this.dropConnection();
    this.set(false);
  }

  private tick(): Promise<void> {
    this.round = this.attempt()
      .catch((err: unknown) => {
        this.opts.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'leader lease: connection lost');
        this.set(false);
        return this.dropConnection();
      })
      .finally(() => {
        if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retryMs);
      });
    return this.round;
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    const client = await this.connection();
    if (this.holding) {
      // Still our session? A failed query means the connection (and with it the lock) is gone.
      await client.query('select 1');
      return;
    }
    const r = await client.query<{ got: boolean }>('select pg_try_advisory_lock($1::bigint) as got', [
      this.key.toString(),
    ]);
    if (r.rows[0]?.got) this.set(true);
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.opts.databaseUrl,
      keepAlive: true,
      // Names the holder in pg_stat_activity (operators, and the cluster test, see who holds it).
      application_name: `wrenn-lease-${process.pid}`,
      // A holder whose queries hang (a partitioned server) must not keep believing it holds.
      query_timeout: Math.max(1_000, this.retryMs),
      connectionTimeoutMillis: Math.max(1_000, this.retryMs),
    });
    client.on('error', (err) => {
      this.opts.log.warn({ err: err.message }, 'leader lease: connection error');
      if (this.client === client) {
        this.client = undefined;
        this.set(false);
      }
    });
    await client.connect();
    this.client = client;
    return client;
  }

  private async dropConnection(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => {});
  }

  private set(held: boolean): void {
    if (held === this.holding) return;
    this.holding = held;
    this.opts.log.info({ held }, held ? 'leader lease taken: running periodic work' : 'leader lease lost');
    for (const fn of this.listeners) fn(held);
  }
}
