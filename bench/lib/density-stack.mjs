#!/usr/bin/env node
// The `wrenn up` stack of bench/density in a process of its own, so the bench's own HTTP client
// and sampling stay out of the stack's CPU and RSS figures. Control plane, local host agent and
// embedded SQLite under the data dir it is given, with its own cgroup parent, address pool and
// interface names. Prints one JSON line {url, adminKey, pid, cgroupParent} on stdout when ready.
// It tears everything down (every capsule destroyed, networks, cgroup parent, mounts, data dir) on
// SIGTERM, SIGINT or when its stdin closes (the bench died); `--cleanup` starts on a data dir left
// by a stack that crashed, takes its capsules back and tears them down the same way.
// Usage (by bench/density.mjs): node bench/lib/density-stack.mjs '<json options>' [--cleanup]
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { startUp } from '../../packages/control-plane/dist/src/up.js';
import { removeCgroupParent } from './cgroup-parent.mjs';

const DENSITY_CGROUP_PARENT = 'wrenn-bench-density';
const DENSITY_NETWORK = {
  // 4,096 /30 slots: room for 1,000 capsules and their warm networks.
  pool: '10.232.0.0/18',
  names: { netnsPrefix: 'wrd-', ifPrefix: 'wd', chainPrefix: 'WRD' },
  metadataPort: 31280,
};

const log = (line) => process.stderr.write(`[density-stack] ${line}\n`);

async function main() {
  const o = JSON.parse(process.argv[2] ?? '{}');
  const cleanupOnly = process.argv.includes('--cleanup');
  if (!o.dataDir) throw new Error('density-stack: options need dataDir');
  const up = await startUp({
    dataDir: o.dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    domain: 'localhost',
    logLevel: o.logLevel ?? 'warn',
    cgroupParent: DENSITY_CGROUP_PARENT,
    network: DENSITY_NETWORK,
    ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}),
    ...(o.warmPool && !cleanupOnly ? { warmPool: { [o.template ?? 'minimal']: o.warmPool } } : {}),
    warmMinimal: !cleanupOnly,
    onProgress: (line) => log(line),
  });
  let stopping;
  const stop = () =>
    (stopping ??= (async () => {
      const ids = up.agent.manager.list().map((r) => r.id);
      log(`stopping: destroying ${ids.length} capsules`);
      // In batches: a thousand destroys at once would each hold netns, mount and cgroup work.
      for (let i = 0; i < ids.length; i += 20) {
        await Promise.all(ids.slice(i, i + 20).map((id) => up.agent.manager.destroy(id).catch(() => undefined)));
        if (i % 200 === 0 && i) log(`  ${i}/${ids.length} destroyed`);
      }
      await up.agent.manager.destroyAll().catch(() => undefined); // warm-pool capsules made meanwhile
      await up.close().catch((err) => log(`close: ${err?.message ?? err}`));
      await up.layers.networkManager.removeAll().catch(() => undefined);
      removeCgroupParent(DENSITY_CGROUP_PARENT);
      try {
        execFileSync('sh', [
          '-c',
          `grep ' ${o.dataDir}' /proc/self/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l`,
        ]);
      } catch {
        // nothing mounted
      }
      rmSync(o.dataDir, { recursive: true, force: true });
      log('stopped, nothing left');
      process.exit(0);
    })());
  if (cleanupOnly) return stop();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  process.stdout.write(
    `${JSON.stringify({ url: up.url, adminKey: up.adminKey, pid: process.pid, cgroupParent: DENSITY_CGROUP_PARENT })}\n`,
  );
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exit(1);
});
