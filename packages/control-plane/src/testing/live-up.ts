// A live system like `wrenn up` for the test suites of this package and of the SDK and CLI: control
// plane + in-process host agent running real namespace capsules, on loopback, with its own network
// slot so it runs beside other suites. close() destroys the capsules, deletes the team templates
// the test made from the shared template cache, and removes namespaces, veths, iptables chains and
// the data dir. (The control plane's e2b suites wrap it in test/e2b-live.ts,
// which also runs PostgreSQL.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type LocalAgentOptions,
  type NetworkOptions,
  removeCgroupParentIfEmpty,
  startLocalAgent,
} from '@wrenn/host-agent';
import { markTestDir, sweepStaleTestDirs } from '@wrenn/host-agent/testing/stale';
import type { Kysely } from 'kysely';
import pino from 'pino';
import type { Database } from '../db/schema.js';
import { type RunningUp, startWithLocalAgent } from '../local-host.js';
import type { TlsSource } from '../tls/certificates.js';

export interface Live {
  up: RunningUp;
  url: string;
  apiKey: string;
  close(): Promise<void>;
}

/** Template cache shared by the live suites (so `minimal` is built once per machine). */
export const SHARED_IMAGES = process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images';

/**
 * Network settings that collide neither with a real Wrenn on this machine nor with other suites
 * running at the same time: each slot (0..15) gets its own address pool, interface/netns/chain
 * names and metadata port. Slots in use: e2b 0-1, reconciler 2-3, native API 4-5, SDK 6 (both of
 * its files), CLI 7 (and cli-fork), up-cleanup and the control plane's security suite 8 (test files
 * run one at a time), e2b base 9, host cluster 10-13 (image templates 13; image prune 13 and 12 for its second host),
 * dashboard and fork-live 14, native test page and
 * template builds 15.
 */
export function slotNetwork(slot: number): Partial<NetworkOptions> {
  if (!Number.isInteger(slot) || slot < 0 || slot > 15) throw new Error(`network slot ${slot} must be 0..15`);
  const letter = 'abcdefghijklmnop'[slot]!;
  return {
    pool: `10.${240 + slot}.0.0/24`,
    names: { netnsPrefix: `wte${letter}-`, ifPrefix: `wte${letter}`, chainPrefix: `WTE${letter.toUpperCase()}` },
    // Below the ephemeral port range (32768+), so no outgoing connection can be holding it.
    metadataPort: 31270 + slot,
    // The egress proxy's two ports (HTTP, TLS), clear of the metadata ports of other slots.
    egressProxyPort: 31300 + 2 * slot,
    rateMbit: 0,
  };
}

/**
 * The cgroup parent of a test system's agent: its own per slot, since agents sharing a parent
 * treat each other's capsules as stale leftovers and kill them when they start.
 */
export const agentCgroupParent = (slot: number) => `wrenn-test-${slot}`;

/** Removes the (empty) cgroup parent of a slot once its agent's capsules are gone. */
export function removeCgroupParent(slot: number): void {
  removeCgroupParentIfEmpty(undefined, agentCgroupParent(slot));
}

export interface TestUpOptions {
  dataDir: string;
  /** Network slot (see slotNetwork); also picks the agent's cgroup parent. */
  slot: number;
  domain?: string;
  /** Listener address (default 127.0.0.1, a free port). */
  listen?: { host: string; port: number };
  /** Serve HTTPS (E2B_DOMAIN mode tests). */
  tls?: TlsSource;
  databaseUrl?: string;
  /** Template cache (default the shared one, so `minimal` is built once per machine). */
  imagesDir?: string;
  /** Each namespace capsule's disk in MiB (e.g. small for disk-filling probes). */
  capsuleDiskMb?: number;
  capacity?: LocalAgentOptions['capacity'];
  /** Network settings over the slot's (e.g. the egress tests' name server and "internet" range). */
  network?: Partial<NetworkOptions>;
  /** Ready capsules kept per template, as `wrenn up --warm-pool` (default none). */
  warmPool?: Record<string, number>;
}

/** The test system itself: this machine's agent in a slot of its own, and a control plane over it. */
export async function startTestUp(o: TestUpOptions): Promise<RunningUp> {
  // A killed run's data dir keeps its capsules' loop-mounted disks: swept once its process is gone.
  markTestDir(o.dataDir);
  await sweepStaleTestDirs();
  const logLevel = process.env.WRENN_TEST_LOG ?? 'silent';
  const local = await startLocalAgent({
    dataDir: o.dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    network: { ...slotNetwork(o.slot), ...o.network },
    cgroupParent: agentCgroupParent(o.slot),
    imagesDir: o.imagesDir ?? SHARED_IMAGES,
    ...(o.capsuleDiskMb !== undefined ? { diskMb: o.capsuleDiskMb } : {}),
    ...(o.capacity ? { capacity: o.capacity } : {}),
    ...(o.warmPool ? { warmPool: o.warmPool } : {}),
    log: pino({ level: logLevel, base: { svc: 'host-agent' } }),
  });
  try {
    return await startWithLocalAgent({
      local,
      dataDir: o.dataDir,
      listen: o.listen ?? { host: '127.0.0.1', port: 0 },
      domain: o.domain ?? 'localhost',
      ...(o.tls ? { tls: o.tls } : {}),
      ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
      logLevel,
    });
  } catch (err) {
    await local.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Deletes from the agent's template store every team template the control plane recorded
 * (snapshots, build layers and builds, image templates; stored as their ids), each after the
 * templates stacked on it: the live suites share one template cache, where they would otherwise
 * stay after the test. Run once the capsules are gone.
 */
export async function removeTeamTemplates(
  db: Kysely<Database>,
  store: { list(): Promise<{ name: string; parent?: string }[]>; delete(name: string): Promise<void> },
): Promise<void> {
  const ours = new Set(
    (await db.selectFrom('templates').select('id').where('team_id', 'is not', null).execute()).map((r) => r.id),
  );
  let left = (await store.list()).filter((t) => ours.has(t.name));
  while (left.length > 0) {
    const parents = new Set(left.map((t) => t.parent));
    const leaves = left.filter((t) => !parents.has(t.name));
    if (leaves.length === 0) throw new Error(`templates stacked in a cycle: ${left.map((t) => t.name).join(', ')}`);
    for (const t of leaves) await store.delete(t.name);
    left = left.filter((t) => !leaves.includes(t));
  }
}

/** `extra`: further options (e.g. a small capsuleDiskMb for disk-filling probes). */
export async function startLive(
  slot: number,
  label: string,
  extra: Pick<TestUpOptions, 'capsuleDiskMb' | 'domain' | 'listen' | 'tls'> = {},
): Promise<Live> {
  const dataDir = mkdtempSync(join(tmpdir(), `wrenn-${label}-live-`));
  let up: RunningUp;
  try {
    up = await startTestUp({ dataDir, slot, ...extra });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    up,
    url: up.url,
    apiKey: up.adminKey,
    async close() {
      const errors: unknown[] = [];
      const step = async (fn: () => Promise<unknown>) => fn().catch((e: unknown) => errors.push(e));
      await step(() => up.agent.manager.destroyAll());
      await step(() => removeTeamTemplates(up.cp.ctx.database.db, up.agent.manager.templates()));
      await step(() => up.cp.close());
      await step(() => up.agent.close());
      await step(() => up.layers.close());
      await step(() => up.layers.networkManager.removeAll());
      removeCgroupParent(slot);
      rmSync(dataDir, { recursive: true, force: true });
      if (errors.length > 0) throw new AggregateError(errors, 'live system cleanup had errors');
    },
  };
}
