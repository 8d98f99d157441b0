// Stopping a namespace capsule's processes for destroy and hibernate: everything in its cgroups
// is killed, then the init by (pid, start time) in case the cgroups were removed by hand, then the
// helper is waited for, so that nothing of the capsule runs once this returns.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CapsuleCgroups } from './cgroups.js';
import type { NamespaceState } from './namespace-runtime.js';
import { readStartTime } from './proc-start-time.js';

export async function stopCapsuleProcesses(
  cg: CapsuleCgroups,
  s?: Pick<NamespaceState, 'pid' | 'startTime' | 'helperPid' | 'helperStartTime'>,
): Promise<void> {
  if (cg.exists()) await cg.killAll();
  // The init is in the cgroups from birth; this only matters if they were removed by hand.
  if (s?.pid && readStartTime(s.pid) === s.startTime) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // gone
    }
    for (let i = 0; i < 500 && readStartTime(s.pid) === s.startTime; i++) await sleep(2);
  }
  // The helper exits as soon as it has reaped the init: when destroy returns, nothing is left.
  const hp = s?.helperPid;
  if (hp && s.helperStartTime) {
    for (let i = 0; i < 1000 && readStartTime(hp) === s.helperStartTime; i++) await sleep(i < 20 ? 1 : 5);
  }
}
