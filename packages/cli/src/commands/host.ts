// `wrenn host ls|drain|undrain`: the hosts that run capsules; draining one (admin key) sends new
// capsules elsewhere while its own stay.
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
});

export const hostList = (o: { json?: boolean }) =>
  run(async () => {
    const list = await Host.list(connection());
    if (o.json) return printJson(list.map(hostJson));
    printTable(
      ['ID', 'STATUS', 'CAPSULES', 'VCPUS', 'MEMORY', 'RUNTIMES', 'HEARTBEAT'],
      list.map((h) => [
        h.id,
        h.status,
        String(h.capsules),
        `${h.allocatedVcpus}/${h.cpuCount}`,
        `${h.allocatedMemoryMb}/${h.memoryMb} MiB`,
        h.runtimes.join(','),
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
