// A live `wrenn up` for the SDK and CLI test suites: control plane + in-process host agent
// running real namespace capsules, on loopback, with its own network slot so it runs beside other
// suites. close() destroys the capsules and removes namespaces, veths, iptables chains and the
// data dir. (The control plane's own suites use test/e2b-live.ts, which also runs PostgreSQL.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningUp, startUp } from '../up.js';

export interface Live {
  up: RunningUp;
  url: string;
  apiKey: string;
  close(): Promise<void>;
}

/** Template cache shared by the live suites (so `minimal` is built once per machine). */
const SHARED_IMAGES = process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images';

/**
 * Network slot 0..15: address pool, interface/netns/chain names and metadata port of its own.
 * Slots: control plane suites 0-5, 9-15; SDK 6 (both of its files); CLI 7.
 */
export function slotNetwork(slot: number) {
  const letter = 'abcdefghijklmnop'[slot]!;
  return {
    pool: `10.${240 + slot}.0.0/24`,
    names: { netnsPrefix: `wte${letter}-`, ifPrefix: `wte${letter}`, chainPrefix: `WTE${letter.toUpperCase()}` },
    metadataPort: 31270 + slot,
    rateMbit: 0,
  };
}

/** `label` names the data dir (wrenn-<label>-live-*) so a leftover says which suite made it. */
export async function startLive(slot: number, label: string): Promise<Live> {
  const dataDir = mkdtempSync(join(tmpdir(), `wrenn-${label}-live-`));
  let up: RunningUp;
  try {
    up = await startUp({
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      domain: 'localhost',
      network: slotNetwork(slot),
      imagesDir: SHARED_IMAGES,
      logLevel: process.env.WRENN_TEST_LOG ?? 'silent',
    });
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
      await step(() => up.cp.close());
      await step(() => up.agent.close());
      await step(() => up.layers.close());
      await step(() => up.layers.networkManager.removeAll());
      rmSync(dataDir, { recursive: true, force: true });
      if (errors.length > 0) throw new AggregateError(errors, 'live system cleanup had errors');
    },
  };
}
