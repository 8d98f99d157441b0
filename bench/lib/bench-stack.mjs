// The `wrenn up` stack a benchmark measures, started one way for every bench: a temp data dir,
// loopback on a free port, silent logs, a cgroup parent of the bench's own (removed at the end) and
// a capsule network that does not collide with a running Wrenn or another bench (its own pool,
// interface/netns/chain prefixes and metadata port). stop() destroys what the bench left behind.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUp } from '@wrenn/cli';
import { adminApi } from './admin-api.mjs';
import { removeCgroupParent } from './cgroup-parent.mjs';

export { adminApi, timedAdminApi } from './admin-api.mjs';

/**
 * Starts the stack for bench `name`. The second argument: pool (CIDR), prefix (a short tag for the
 * interface, netns and chain names), metadataPort and any other network option (rateMbit...);
 * `options`: any other startUp option (imagesDir, domain, warmPool...), which wins.
 */
export async function startBenchStack(name, { pool, prefix, metadataPort, ...network }, options = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), `wrenn-bench-${name}-`));
  const cgroupParent = options.cgroupParent ?? `wrenn-bench-${name}`;
  let up;
  try {
    up = await startUp({
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      domain: 'localhost',
      logLevel: 'silent',
      cgroupParent,
      network: {
        pool,
        names: { netnsPrefix: `wr${prefix}-`, ifPrefix: `w${prefix}`, chainPrefix: `WR${prefix.toUpperCase()}` },
        metadataPort,
        ...network,
      },
      ...options,
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    removeCgroupParent(cgroupParent);
    throw err;
  }
  return {
    up,
    dataDir,
    cgroupParent,
    /** A call to the stack's HTTP API as the admin (`path` from the root: /v1/..., /sandboxes); JSON or null. */
    api: adminApi(up),
    /** e2b SDK options that reach this stack. */
    e2bOptions: { apiKey: up.adminKey, apiUrl: up.url, sandboxUrl: up.url, domain: options.domain ?? 'localhost' },
    async stop() {
      await up.agent.manager.destroyAll().catch(() => undefined);
      await up.close().catch(() => undefined);
      await up.layers.networkManager.removeAll().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
      removeCgroupParent(cgroupParent);
    },
  };
}

/** Runs fn(stack) on a fresh stack and always stops it. */
export async function withBenchStack(name, net, options, fn) {
  const stack = await startBenchStack(name, net, options);
  try {
    return await fn(stack);
  } finally {
    await stack.stop();
  }
}
