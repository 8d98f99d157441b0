// The teardown of a `wrenn agent` that a test started through the CLI: run inside that agent's
// network namespace with its data dir (argv[2]) and its environment (WRENN_NAME_PREFIX), it takes
// back whatever capsules the agent left (a failed test, a killed agent), destroys them, their
// networks, firewall chains and cgroup parent, and exits 0.
import { namePrefixFromEnv, removeCgroupParentIfEmpty, startLocalAgent } from '@wrenn/host-agent';
import pino from 'pino';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('cli-agent-sweep: pass the agent data dir');
const local = await startLocalAgent({
  dataDir,
  listen: { host: '127.0.0.1', port: 0 },
  log: pino({ level: process.env.WRENN_TEST_LOG ?? 'warn' }),
});
await local.agent.manager.destroyAll();
await local.close();
await local.layers.networkManager.removeAll().catch(() => undefined);
removeCgroupParentIfEmpty(undefined, namePrefixFromEnv()?.cgroupParent);
process.exit(0);
