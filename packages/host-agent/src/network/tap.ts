// TAP device for a VM capsule inside its network namespace. The guest always has the same
// link-local address behind tap0; the namespace forwards the capsule's own address (the veth's
// eth0) to it with DNAT and rewrites the guest's outgoing traffic to it with SNAT, so the host,
// the firewall and the metadata server see the capsule exactly like a namespace capsule.
import { run, runOk } from './exec.js';

export const TAP_IFNAME = 'tap0';
export const GUEST_IP = '169.254.0.21';
export const TAP_IP = '169.254.0.22'; // the guest's gateway
export const GUEST_NETMASK = '255.255.255.252';
export const TAP_TXQUEUELEN = 5000;
const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function check(netns: string, capsuleIp: string): void {
  if (!NETNS_RE.test(netns)) throw new Error(`invalid network namespace name ${JSON.stringify(netns)}`);
  if (!IPV4_RE.test(capsuleIp)) throw new Error(`invalid capsule address ${JSON.stringify(capsuleIp)} (IPv4 expected)`);
}

/** The kernel command line `ip=` value that configures the guest's eth0 behind the TAP. */
export function guestIpParam(hostname: string): string {
  return `${GUEST_IP}::${TAP_IP}:${GUEST_NETMASK}:${hostname}:eth0:off`;
}

function natRules(capsuleIp: string, op: '-A' | '-D'): string {
  return [
    '*nat',
    `${op} PREROUTING -i eth0 -d ${capsuleIp}/32 -m comment --comment wrenn-tap -j DNAT --to-destination ${GUEST_IP}`,
    `${op} POSTROUTING -o eth0 -s ${GUEST_IP}/32 -m comment --comment wrenn-tap -j SNAT --to-source ${capsuleIp}`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Creates tap0 (txqueuelen 5000) in `netns` and the DNAT/SNAT that puts the guest at `capsuleIp`. Idempotent. */
export async function createTap(netns: string, capsuleIp: string): Promise<void> {
  check(netns, capsuleIp);
  await removeTap(netns, capsuleIp);
  await runOk(
    'ip',
    ['-n', netns, '-batch', '-'],
    [
      `tuntap add dev ${TAP_IFNAME} mode tap`,
      `link set ${TAP_IFNAME} txqueuelen ${TAP_TXQUEUELEN}`,
      `addr add ${TAP_IP}/30 dev ${TAP_IFNAME}`,
      `link set ${TAP_IFNAME} up`,
      '',
    ].join('\n'),
    `creating ${TAP_IFNAME} in ${netns}`,
  );
  // Forwarding is per namespace: a fresh one has it off.
  await runOk(
    'ip',
    ['netns', 'exec', netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'],
    '',
    `enabling forwarding in ${netns}`,
  );
  await runOk(
    'ip',
    ['netns', 'exec', netns, 'iptables-restore', '-w', '5', '--noflush'],
    natRules(capsuleIp, '-A'),
    `TAP NAT in ${netns}`,
  );
}

/** Removes tap0 and its NAT rules from `netns` (nothing to do when they are gone). */
export async function removeTap(netns: string, capsuleIp: string): Promise<void> {
  check(netns, capsuleIp);
  await run('ip', ['-n', netns, 'link', 'del', TAP_IFNAME]);
  // Deleting rules one at a time: a missing one must not stop the others.
  for (const rule of natRules(capsuleIp, '-D')
    .split('\n')
    .filter((l) => l.startsWith('-D'))) {
    await run('ip', ['netns', 'exec', netns, 'iptables-restore', '-w', '5', '--noflush'], `*nat\n${rule}\nCOMMIT\n`);
  }
}

/** true when tap0 exists in `netns`. */
export async function tapExists(netns: string): Promise<boolean> {
  return (await run('ip', ['-n', netns, 'link', 'show', TAP_IFNAME])).code === 0;
}
