// The teardown of a bench that runs a host agent in its own process (startAgent + createLocalLayers):
// capsules destroyed, agent and layers closed, networks and the cgroup parent removed, whatever a
// failed run left mounted under the data dir unmounted, the data dir deleted.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { removeCgroupParent } from './cgroup-parent.mjs';

export async function stopLocalAgent({ agent, layers, dataDir, cgroupParent }) {
  await agent.manager.destroyAll().catch(() => undefined);
  await agent.close();
  await layers.close();
  await layers.networkManager.removeAll().catch(() => undefined);
  removeCgroupParent(cgroupParent);
  try {
    execFileSync('sh', [
      '-c',
      `grep ' ${dataDir}' /proc/self/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l`,
    ]);
  } catch {}
  rmSync(dataDir, { recursive: true, force: true });
}
