// A host agent as its own process, for the cluster fixture: started inside a network namespace
// (nsenter --net) so it has an address of its own, with its own data dir, cgroup parent and
// capsule network names, and the shared template cache; with CLUSTER_AGENT_TLS=1 it serves TLS with
// a certificate made under its data dir, as `wrenn agent` does. Configured by environment variables;
// prints "ready <hostId>" on stdout once listening. SIGTERM closes it (capsules stay for the
// next start to take back); SIGKILL leaves them running as a crashed agent would. With
// CLUSTER_AGENT_DESTROY=1 it takes its capsules back, destroys them and its networks, and exits
// (the fixture's teardown).
import { removeCgroupParentIfEmpty, startLocalAgent } from '@wrenn/host-agent';
import pino from 'pino';
import { SHARED_IMAGES, slotNetwork } from '../../src/testing/live-up.js';

const need = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`agent-process: set ${name}`);
  return v;
};

const slot = Number(need('CLUSTER_AGENT_SLOT'));
const tag = need('CLUSTER_AGENT_TAG');
const base = slotNetwork(slot);
const local = await startLocalAgent({
  dataDir: need('CLUSTER_AGENT_DIR'),
  // The teardown run too listens on the host's address, where the replicas still poll it (and may
  // send it warm-pool sizes) while it destroys and closes: its close() must not wait for them.
  listen: { host: need('CLUSTER_AGENT_HOST'), port: Number(need('CLUSTER_AGENT_PORT')) },
  imagesDir: SHARED_IMAGES,
  cgroupParent: `wrenn-cluster-${tag}`,
  network: {
    ...base,
    // Interfaces, chains and ports live in this agent's own network namespace; only the names of
    // capsule namespaces (/run/netns) are shared with the machine.
    names: { netnsPrefix: `wcl${tag}-`, ifPrefix: `wc${tag.slice(0, 1)}`, chainPrefix: `WCL${tag.toUpperCase()}` },
  },
  qemu: false,
  firecracker: false,
  ...(process.env.CLUSTER_AGENT_TLS === '1' ? { tls: 'self-signed' as const } : {}),
  log: pino({ level: process.env.WRENN_TEST_LOG ?? 'warn' }),
});
if (process.env.CLUSTER_AGENT_DESTROY === '1') {
  await local.agent.manager.destroyAll();
  await local.close();
  await local.layers.networkManager.removeAll().catch(() => undefined);
  removeCgroupParentIfEmpty(undefined, `wrenn-cluster-${tag}`);
  process.exit(0);
}
process.stdout.write(`ready ${local.agent.hostId}\n`);
process.once('SIGTERM', () => {
  void local.close().then(() => process.exit(0));
});
