// Stand-ins for what capsules must not reach, and for the internet, for the egress probes: a "LAN"
// namespace behind a plain veth holding one address of each kind, each routed by the host to it
// (/32 routes that go with the veth). No packet leaves the machine.
import { existsSync } from 'node:fs';
import { execIp, serverInNetns, udpEchoInNetns } from '../network-helpers.js';

/** A "LAN" namespace behind a plain veth, holding one address of each kind the host routes to it. */
export const LAN = {
  netns: 'wrnx-lan',
  hostIf: 'xl-wrnt',
  hostIp: '10.224.9.1',
  ip: '10.224.9.2',
  dns: '10.224.9.53', // the capsules' name server: private, as on many hosts
  linkLocal: '169.254.77.7',
  cgnat: '100.64.9.9',
  hostAllowed: '172.16.9.9', // in LAN_POLICY.egressAllow
  global: '11.224.9.9', // stands in for the internet
};
/** One more address of the host itself (this kernel has no dummy interfaces: on the LAN veth). */
export const HOST_EXTRA = { ip: '10.224.8.1' };

/** The network settings the probes run with: the LAN's name server, one range opened per host, one openable. */
export const LAN_POLICY = { dnsServers: [LAN.dns], egressAllow: ['172.16.9.0/24'], egressOpenable: ['10.224.9.0/24'] };

/** The port of the LAN's greeting servers (also on 53, with a UDP echo on 53 of LAN.ip and LAN.dns). */
export const LAN_PORT = 18090;

async function ipBatch(args: string[], lines: string[]): Promise<void> {
  await execIp([...args, '-batch', '-'], `${lines.join('\n')}\n`);
}

export async function createLan(): Promise<void> {
  const extra = [LAN.dns, LAN.linkLocal, LAN.cgnat, LAN.hostAllowed, LAN.global];
  await ipBatch(
    [],
    [
      `netns add ${LAN.netns}`,
      `link add ${LAN.hostIf} type veth peer name eth0 netns ${LAN.netns}`,
      `addr add ${LAN.hostIp}/30 dev ${LAN.hostIf}`,
      `link set ${LAN.hostIf} up`,
      // Host routes to the LAN's extra addresses: gone with the veth.
      ...extra.map((a) => `route add ${a}/32 via ${LAN.ip} dev ${LAN.hostIf}`),
      `addr add ${HOST_EXTRA.ip}/32 dev ${LAN.hostIf}`,
    ],
  );
  await ipBatch(
    ['-n', LAN.netns],
    [
      'link set lo up',
      `addr add ${LAN.ip}/30 dev eth0`,
      ...extra.map((a) => `addr add ${a}/32 dev lo`),
      'link set eth0 up',
    ],
  );
}

export async function removeLan(): Promise<void> {
  await ipBatch(['-force'], [`link del ${LAN.hostIf}`, `netns del ${LAN.netns}`]).catch(() => {});
}

/** Starts the LAN's servers (killed by killChildren()). */
export async function startLanServers(): Promise<void> {
  await Promise.all([
    serverInNetns(LAN.netns, LAN_PORT),
    serverInNetns(LAN.netns, 53),
    // One per address: a reply from 0.0.0.0 would leave from the namespace's primary address.
    udpEchoInNetns(LAN.netns, 53, LAN.dns),
    udpEchoInNetns(LAN.netns, 53, LAN.ip),
  ]);
}

/** What of the LAN is still there; [] when clean. */
export function lanLeftovers(): string[] {
  const out: string[] = [];
  if (existsSync(`/sys/class/net/${LAN.hostIf}`)) out.push(`link ${LAN.hostIf}`);
  if (existsSync(`/run/netns/${LAN.netns}`)) out.push(`netns ${LAN.netns}`);
  return out;
}
