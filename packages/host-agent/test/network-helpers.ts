// Helpers for the network tests: node processes inside namespaces, TCP probes, leftover checks.
// All traffic stays on loopback and inside namespaces the tests create.
import { existsSync, readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { execFileP, execIp } from '../src/testing/netns.js';

export {
  execFileP,
  execIp,
  killChildren,
  nodeInNetns,
  serverInNetns,
  udpEchoInNetns,
} from '../src/testing/netns.js';

/** Names no agent or other test uses, so these tests never touch anything else on the machine. */
export const TEST_NAMES = { netnsPrefix: 'wrnt-', ifPrefix: 'wn', chainPrefix: 'WRNT' };
export const TEST_POOL = '10.223.0.0/24';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Probe {
  ok: boolean;
  data?: string;
  error?: string;
}

const PROBE = `const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
let d = '';
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
s.setTimeout(Number(ms), () => done({ ok: false, error: 'timeout' }));
s.on('data', (x) => (d += x));
s.on('end', () => done({ ok: true, data: d.trim() }));
s.on('error', (e) => done({ ok: false, error: e.code }));`;

/** Opens a TCP connection from inside `netns` and reports the greeting or why it failed. */
export async function probeFrom(netns: string, host: string, port: number, ms = 1000): Promise<Probe> {
  const { stdout } = await execFileP('ip', [
    'netns',
    'exec',
    netns,
    process.execPath,
    '-e',
    PROBE,
    host,
    String(port),
    String(ms),
  ]);
  return JSON.parse(stdout) as Probe;
}

const UDP_PROBE = `const [host, port, ms] = process.argv.slice(1);
const s = require('dgram').createSocket('udp4');
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
setTimeout(() => done({ ok: false, error: 'timeout' }), Number(ms));
s.on('message', (m) => done({ ok: true, data: m.toString().trim() }));
s.on('error', (e) => done({ ok: false, error: e.code }));
s.connect(Number(port), host, () => s.send('ping'));`;

/** Sends one UDP datagram from inside `netns` and reports the answer (see udpEchoInNetns) or why none came. */
export async function udpProbeFrom(netns: string, host: string, port: number, ms = 1000): Promise<Probe> {
  const { stdout } = await execFileP('ip', [
    'netns',
    'exec',
    netns,
    process.execPath,
    '-e',
    UDP_PROBE,
    host,
    String(port),
    String(ms),
  ]);
  return JSON.parse(stdout) as Probe;
}

/** The same probe from the host itself. */
export function probeFromHost(host: string, port: number, ms = 1000): Promise<Probe> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let d = '';
    s.setTimeout(ms, () => (s.destroy(), resolve({ ok: false, error: 'timeout' })));
    s.on('data', (x) => (d += x));
    s.on('end', () => resolve({ ok: true, data: d.trim() }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code }));
  });
}

/** HTTP GET from inside `netns` (node's fetch), resolving with status and body. */
export async function httpGetFrom(
  netns: string,
  url: string,
  accept = '*/*',
): Promise<{ status: number; body: string }> {
  const script = `fetch(process.argv[1], { headers: { accept: process.argv[2] }, signal: AbortSignal.timeout(3000) })
    .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))
    .catch((e) => console.log(JSON.stringify({ status: 0, body: String(e.cause?.code ?? e) })))`;
  const { stdout } = await execFileP('ip', ['netns', 'exec', netns, process.execPath, '-e', script, url, accept]);
  return JSON.parse(stdout) as { status: number; body: string };
}

/** Addresses in the internet-switch ipsets of `chainPrefix` (<P>-INET: on, <P>-NOINET: off). */
export async function switchSets(chainPrefix = TEST_NAMES.chainPrefix): Promise<{ inet: string[]; noinet: string[] }> {
  const members = async (set: string) => {
    const { stdout } = await execFileP('ipset', ['list', set]);
    return (
      stdout
        .split('Members:\n')[1]
        ?.split('\n')
        .map((l) => l.split(' ')[0] ?? '')
        .filter(Boolean) ?? []
    );
  };
  return { inet: await members(`${chainPrefix}-INET`), noinet: await members(`${chainPrefix}-NOINET`) };
}

/** Everything of the test names still present on the host; [] when clean. */
export async function leftovers(slotDir?: string): Promise<string[]> {
  const out: string[] = [];
  if (existsSync('/run/netns')) {
    for (const n of readdirSync('/run/netns')) {
      if (n.startsWith(TEST_NAMES.netnsPrefix) || n === OUTSIDE.netns) out.push(`netns ${n}`);
    }
  }
  for (const n of readdirSync('/sys/class/net')) if (/^wn\d+$/.test(n) || n === OUTSIDE.hostIf) out.push(`link ${n}`);
  for (const cmd of ['iptables-save', 'ip6tables-save']) {
    const { stdout } = await execFileP(cmd, []);
    for (const l of stdout.split('\n'))
      if (l.includes(`${TEST_NAMES.chainPrefix}-`) || / wn\+? /.test(l)) out.push(`${cmd}: ${l}`);
  }
  const { stdout: setNames } = await execFileP('ipset', ['list', '-n']);
  for (const n of setNames.split('\n')) if (n.startsWith(`${TEST_NAMES.chainPrefix}-`)) out.push(`ipset ${n}`);
  if (slotDir && existsSync(slotDir)) for (const f of readdirSync(slotDir)) out.push(`slot file ${f}`);
  return out;
}

/**
 * A stand-in for "the internet": a namespace of our own behind a plain veth (not a capsule
 * interface), so forwarded traffic can be tested without sending a packet to any real address.
 * Its addresses are global ones (capsules may not reach private ranges), routed by the host to
 * this veth only while the test runs (a /30 more specific than any real route).
 */
export const OUTSIDE = { netns: 'wrnx-outside', hostIf: 'xo-wrnt', hostIp: '11.223.1.1', ip: '11.223.1.2' };

export async function createOutside(): Promise<void> {
  const o = OUTSIDE;
  const batch = [
    `netns add ${o.netns}`,
    `link add ${o.hostIf} type veth peer name eth0 netns ${o.netns}`,
    `addr add ${o.hostIp}/30 dev ${o.hostIf}`,
    `link set ${o.hostIf} up`,
  ].join('\n');
  await execIp(['-batch', '-'], batch);
  await execIp(['-n', o.netns, '-batch', '-'], `link set lo up\naddr add ${o.ip}/30 dev eth0\nlink set eth0 up\n`);
}

export async function removeOutside(): Promise<void> {
  await execIp(['-force', '-batch', '-'], `link del ${OUTSIDE.hostIf}\nnetns del ${OUTSIDE.netns}\n`).catch(() => {});
}
