// Namespaces, veth pairs, addresses, routes and queueing disciplines, in as few spawns as possible:
// `ip -batch` on the host side, then `ip -batch` and `tc -batch` in the namespace, from one shell.
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { run, runOk } from './exec.js';

export interface LinkSpec {
  netnsName: string;
  hostIfname: string;
  hostIp: string;
  capsuleIp: string;
  prefixLen: number;
  rateMbit: number;
  txqueuelen: number;
}

/** The capsule-side interface name inside the namespace. */
export const CAPSULE_IFNAME = 'eth0';

async function writeSysctl(path: string, value: string): Promise<void> {
  try {
    await writeFile(path, value);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // e.g. a kernel without IPv6
  }
}

/**
 * Builds the capsule's network. The namespace is created by host root in the host's user
 * namespace, so root in the capsule's own user namespace has no CAP_NET_ADMIN over it: it cannot
 * change its address, routes or the rate limit below.
 */
export async function createLinks(s: LinkSpec): Promise<void> {
  // Leftovers of a crash under the same names (no slot file claims them, or we would not be here).
  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );
  const [oldNs, oldIf] = await Promise.all([
    exists(`/run/netns/${s.netnsName}`),
    exists(`/sys/class/net/${s.hostIfname}`),
  ]);
  if (oldNs || oldIf) {
    await removeLinks([
      { ...(oldNs ? { netnsName: s.netnsName } : {}), ...(oldIf ? { hostIfname: s.hostIfname } : {}) },
    ]);
  }
  const host = [
    `netns add ${s.netnsName}`,
    `link add ${s.hostIfname} txqueuelen ${s.txqueuelen} type veth peer name ${CAPSULE_IFNAME} txqueuelen ${s.txqueuelen} netns ${s.netnsName}`,
    // No IPv6 link-local address on the host side: capsules get no IPv6 path to the host.
    `link set ${s.hostIfname} addrgenmode none`,
    `addr add ${s.hostIp}/${s.prefixLen} dev ${s.hostIfname}`,
    `link set ${s.hostIfname} up`,
  ];
  const inside = [
    'link set lo up',
    `addr add ${s.capsuleIp}/${s.prefixLen} dev ${CAPSULE_IFNAME}`,
    `link set ${CAPSULE_IFNAME} up`,
    `route add default via ${s.hostIp} dev ${CAPSULE_IFNAME}`,
  ];
  // Capsule egress is shaped on the capsule side of the veth: its namespace belongs to host root,
  // so the capsule cannot change it. (Policing on the host side needs act_police/cls_matchall,
  // which not every kernel has; tbf is everywhere.) burst = 10 ms at the rate, at least 32 KiB.
  const burst = Math.max(32 * 1024, Math.ceil((s.rateMbit * 1e6) / 8 / 100));
  const tc =
    s.rateMbit > 0
      ? [`qdisc add dev ${CAPSULE_IFNAME} root tbf rate ${s.rateMbit}mbit burst ${burst} latency 50ms`]
      : [];
  // One spawn from Node (forking the agent's large process is the expensive part) running the
  // three batches from a small shell. Every name here was validated by the manager. Inside the
  // namespace through nsenter --net rather than `ip -n`/`tc -n`: those also unshare a mount
  // namespace (a copy of the host's whole mount table, which grows by two mounts per capsule) to
  // remount /sys; measured at 1,000 capsules 11 ms of CPU per call against nsenter's 4.
  const inNetns = `nsenter --net=/run/netns/${s.netnsName}`;
  const script = [
    'set -e',
    `ip -batch - <<'WRENN_EOF'`,
    ...host,
    'WRENN_EOF',
    `${inNetns} ip -batch - <<'WRENN_EOF'`,
    ...inside,
    'WRENN_EOF',
    ...(tc.length ? [`${inNetns} tc -batch - <<'WRENN_EOF'`, ...tc, 'WRENN_EOF'] : []),
    '',
  ].join('\n');
  await runOk('/bin/sh', ['-s'], script, `creating the network of ${s.netnsName}`);
  await Promise.all([
    writeSysctl(`/proc/sys/net/ipv6/conf/${s.hostIfname}/disable_ipv6`, '1'),
    // Strict reverse-path filter: a capsule cannot send with another capsule's source address.
    writeSysctl(`/proc/sys/net/ipv4/conf/${s.hostIfname}/rp_filter`, '1'),
  ]);
}

/** Removes veths and namespaces; whatever is already gone is fine (idempotent). */
export async function removeLinks(items: ReadonlyArray<{ hostIfname?: string; netnsName?: string }>): Promise<void> {
  const lines: string[] = [];
  for (const it of items) {
    if (it.hostIfname) lines.push(`link del ${it.hostIfname}`); // deletes the capsule end too
    if (it.netnsName) lines.push(`netns del ${it.netnsName}`);
  }
  if (lines.length === 0) return;
  const r = await run('ip', ['-force', '-batch', '-'], `${lines.join('\n')}\n`);
  if (r.code === 0) return;
  const real = r.stderr
    .split('\n')
    .filter((l) => l.trim() && !/^Command failed/.test(l) && !/Cannot find device|No such file or directory/.test(l));
  if (real.length > 0) throw new Error(`removing capsule networks failed: ${real.join('; ')}`);
}

/** Names of network namespaces in /run/netns starting with `prefix`. */
export async function listNetns(prefix: string): Promise<string[]> {
  try {
    return (await readdir('/run/netns')).filter((n) => n.startsWith(prefix));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Host interfaces named <prefix><digits> (the host sides of capsule veths). */
export async function listHostIfnames(prefix: string): Promise<string[]> {
  const re = new RegExp(`^${prefix.replace(/[^a-z0-9]/gi, '')}\\d+$`);
  return (await readdir('/sys/class/net')).filter((n) => re.test(n));
}

/** Makes sure /run/netns is a shared mount before concurrent `ip netns add` race to set it up. */
export async function prepareNetnsDir(probeName: string): Promise<void> {
  await runOk(
    'ip',
    ['-force', '-batch', '-'],
    `netns add ${probeName}\nnetns del ${probeName}\n`,
    'preparing /run/netns',
  );
}

/** NAT for capsules needs IPv4 forwarding; written only when off (each write resets per-device forwarding). */
export async function enableIpForwarding(): Promise<void> {
  const path = '/proc/sys/net/ipv4/ip_forward';
  if ((await readFile(path, 'utf8')).trim() !== '1') await writeFile(path, '1');
}
