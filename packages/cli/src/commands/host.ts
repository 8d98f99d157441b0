// `wrenn host ls|drain|undrain|warm-pool`: the hosts that run capsules; draining one (admin key)
// sends new capsules elsewhere while its own stay; warm-pool sets how many ready capsules a host
// keeps per template (admin key), which the scheduler sends creates of that template to first.
import { Host, type HostInfo } from '@wrenn/sdk';
import { ago, connection, printJson, printTable, run } from './support.js';

const hostJson = (h: HostInfo) => ({
  id: h.id,
  status: h.status,
  draining: h.draining,
  runtimes: h.runtimes,
  cpu_count: h.cpuCount,
  memory_mb: h.memoryMb,
  capsules: h.capsules,
  allocated_vcpus: h.allocatedVcpus,
  allocated_memory_mb: h.allocatedMemoryMb,
  last_heartbeat_at: h.lastHeartbeatAt?.toISOString() ?? null,
  warm_pools: h.warmPools,
  warm_pool_target: h.warmPoolTarget,
});

/** "minimal 1/2, base 0/1": ready/kept per template. */
const warmText = (h: HostInfo): string =>
  h.warmPools.map((p) => `${p.template} ${p.ready}/${p.target}`).join(', ') || '-';

export const hostList = (o: { json?: boolean }) =>
  run(async () => {
    const list = await Host.list(connection());
    if (o.json) return printJson(list.map(hostJson));
    printTable(
      ['ID', 'STATUS', 'CAPSULES', 'VCPUS', 'MEMORY', 'RUNTIMES', 'WARM (READY/KEPT)', 'HEARTBEAT'],
      list.map((h) => [
        h.id,
        h.status,
        String(h.capsules),
        `${h.allocatedVcpus}/${h.cpuCount}`,
        `${h.allocatedMemoryMb}/${h.memoryMb} MiB`,
        h.runtimes.join(','),
        warmText(h),
        ago(h.lastHeartbeatAt),
      ]),
      'no hosts; start one with `wrenn agent --control-plane <url> --token <token>`',
    );
  });

export const hostDrain = (id: string, drain: boolean) =>
  run(async () => {
    const h = drain ? await Host.drain(id, connection()) : await Host.undrain(id, connection());
    process.stderr.write(
      drain
        ? `host ${h.id} drained: no new capsules go there; its ${h.capsules} capsule(s) stay\n`
        : `host ${h.id} takes new capsules again\n`,
    );
  });

/**
 * `wrenn host warm-pool <id> [template=count,...]`: without sizes, shows the host's pools; with
 * them, sets them (a template left out keeps none); `--clear` forgets the sizes set here.
 */
export const hostWarmPool = (id: string, spec: string | undefined, o: { clear?: boolean; json?: boolean }) =>
  run(async () => {
    let h: HostInfo;
    if (o.clear) {
      if (spec !== undefined) throw new Error('give sizes or --clear, not both');
      h = await Host.clearWarmPool(id, connection());
      process.stderr.write(
        `host ${h.id}: the sizes set for it are forgotten; its agent keeps its pools until it restarts with its own --warm-pool\n`,
      );
    } else if (spec !== undefined) {
      const { parseWarmPool } = await import('@wrenn/host-agent');
      const set = await Host.setWarmPool(id, parseWarmPool(spec), connection());
      h = set;
      process.stderr.write(
        set.applied ? `host ${h.id} keeps ${spec}\n` : `host ${h.id} did not answer: it gets ${spec} when it does\n`,
      );
    } else {
      const found = (await Host.list(connection())).find((x) => x.id === id);
      if (!found) throw new Error(`no host ${id}; \`wrenn host ls\` lists them`);
      h = found;
    }
    if (o.json) return printJson(hostJson(h));
    printTable(
      ['TEMPLATE', 'READY', 'KEPT'],
      h.warmPools.map((p) => [p.template, String(p.ready), String(p.target)]),
      `host ${h.id} keeps no warm pool`,
    );
  });

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

/** `wrenn image prune`: image templates, cached layers and build file sets nothing uses (admin key). */
export const imagePrune = (o: { olderThan?: string; json?: boolean }) =>
  run(async () => {
    let olderThanSec: number | undefined;
    if (o.olderThan !== undefined) {
      if (!/^\d{1,9}$/.test(o.olderThan)) throw new Error(`--older-than ${o.olderThan}: expected whole seconds ≥ 0`);
      olderThanSec = Number(o.olderThan);
    }
    const r = await Host.pruneImages({ ...connection(), ...(olderThanSec !== undefined ? { olderThanSec } : {}) });
    if (o.json) return printJson(r);
    printTable(
      ['HOST', 'TEMPLATES', 'LAYERS', 'FREED', 'CACHE LEFT'],
      r.hosts.map((h) => [
        h.hostId,
        h.error ? `error: ${h.error}` : String(h.removedTemplates.length),
        h.error ? '' : `${h.removedLayers.length} removed, ${h.keptLayers} kept`,
        mib(h.freedBytes),
        mib(h.cacheBytes),
      ]),
      'no hosts',
    );
    process.stdout.write(
      `file sets: ${r.fileSets.removed} removed (${mib(r.fileSets.freedBytes)}), ${r.fileSets.kept} kept\n`,
    );
    if (r.hosts.some((h) => h.error)) process.exitCode = 1;
  });
