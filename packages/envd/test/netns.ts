// A throw-away network namespace joined to the host by a veth pair with a /30 in 10.250.0.0/16.
// Tests only send traffic to the namespace's address; destroy() removes everything it made.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';

export interface TestNetns {
  name: string;
  /** Host end of the veth. */
  hostIp: string;
  /** The namespace's external address (its end of the veth). */
  nsIp: string;
  destroy(): void;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A 10.250.x.y/30 that no interface or route on the host uses yet. */
function freeSubnet(): { hostIp: string; nsIp: string } {
  const used = ip('-4', '-o', 'addr') + ip('-4', 'route');
  for (let attempt = 0; attempt < 50; attempt++) {
    const x = randomInt(0, 256);
    const y = randomInt(0, 64) * 4;
    if (!used.includes(`10.250.${x}.`)) return { hostIp: `10.250.${x}.${y + 1}`, nsIp: `10.250.${x}.${y + 2}` };
  }
  throw new Error('no free 10.250.x.y/30 subnet found for the test namespace');
}

export function createTestNetns(): TestNetns {
  if (process.getuid?.() !== 0) throw new Error('network namespace tests need root (ip netns add)');
  const tag = randomBytes(3).toString('hex');
  const name = `wrenn-test-${tag}`;
  const hostIf = `wth${tag}`;
  const nsIf = `wtc${tag}`;
  const { hostIp, nsIp } = freeSubnet();
  const destroy = () => {
    for (const args of [
      ['link', 'del', hostIf],
      ['netns', 'del', name],
    ]) {
      try {
        ip(...args);
      } catch {
        // already gone (deleting the namespace also deletes its end of the veth pair)
      }
    }
  };
  try {
    ip('netns', 'add', name);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', name);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', name, 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    ip('-n', name, 'link', 'set', nsIf, 'up');
    ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (err) {
    destroy();
    throw err;
  }
  return { name, hostIp, nsIp, destroy };
}
