// Periodic work (host heartbeats, reconciler, pushed-state streams) must run once across
// control-plane replicas. On PostgreSQL the holder of a session-level advisory lock does it: the
// lock is taken on a connection of its own, so when the holder dies (or its connection does)
// PostgreSQL releases the lock and another replica, retrying every `retryMs`, takes it within
// seconds. The holder checks its connection at the same pace and gives the lease up the moment the
// connection fails. On SQLite there is one process: the lease is always held.
// A network cut is not a death: the server sees nothing wrong with a session whose client went
// silent (no data in flight, TCP keepalive hours away), so the lock would stay held by a replica
// that can no longer reach the database and the others would never take over. The lease session
// therefore sets `idle_session_timeout` (PostgreSQL 14+): the holder pings every `retryMs`, so a
// live holder is never idle that long, while a cut one's session is ended by the server and its
// lock freed. The cut holder's ping times out first (query_timeout), so it has stopped its work
// before anyone else can start it; it then drops that connection without waiting on the dead
// network and keeps trying, as a follower, when the network is back.

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
  /**
   * How long the server keeps a silent lease session (its client cut off) before ending it and
   * freeing the lock; default the larger of 5 s and 3 × retryMs.
   */
  silentSessionMs?: number;
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
  readonly silentSessionMs: number;
  private readonly key: bigint;

  constructor(private readonly opts: LeaderLeaseOptions) {
    this.retryMs = opts.retryMs ?? 2_000;
    this.silentSessionMs = opts.silentSessionMs ?? Math.max(5_000, 3 * this.retryMs);
    this.key = opts.key ?? STATE_LOOPS_LOCK_KEY;
    // The holder must notice a cut (ping interval + query timeout) before the server frees its lock.
    if (this.silentSessionMs <= 2 * Math.max(1_000, this.retryMs))
      throw new Error(`silentSessionMs (${this.silentSessionMs}) must exceed twice the lease retry interval`);
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
    try {
      const v = await client.query<{ v: string }>(`select current_setting('server_version_num') as v`);
      if (Number(v.rows[0]?.v) >= 140000)
        await client.query(`set idle_session_timeout = ${Math.round(this.silentSessionMs)}`);
      else
        this.opts.log.warn(
          'leader lease: PostgreSQL before 14 has no idle_session_timeout; after a network cut the lease moves only when the server drops the dead connection (TCP keepalive)',
        );
    } catch (err) {
      await this.endClient(client);
      throw err;
    }
    this.client = client;
    return client;
  }

  private async dropConnection(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await this.endClient(c);
  }

  /**
   * Ends a connection without waiting on a dead network: a cut peer never answers the close, so
   * after a moment the socket is destroyed (otherwise this round, and stop(), would wait minutes).
   */
  private async endClient(c: pg.Client): Promise<void> {
    const socket = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
    const force = setTimeout(() => socket?.destroy(), 1_000);
    await c.end().catch(() => {});
    clearTimeout(force);
  }

  private set(held: boolean): void {
    if (held === this.holding) return;
    this.holding = held;
    this.opts.log.info({ held }, held ? 'leader lease taken: running periodic work' : 'leader lease lost');
    for (const fn of this.listeners) fn(held);
  }
}
