// An "internet" of the egress policy tests' own: a namespace behind a plain veth holding addresses
// in 198.18.0.0/15 (benchmarking range: never routed anywhere real), each with an HTTP server
// (port 80) and an HTTPS server (443, certificate of a test CA) that answer with what they saw
// (their own address, the Host header, the request headers; /bytes/<n> downloads n bytes), a UDP
// echo, and dnsmasq answering
// the test's names. The host routes the addresses to the veth only while the test runs.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileP, execIp, nodeInNetns, serverInNetns, udpEchoInNetns } from './netns.js';
import { killStaleDnsmasq } from './stale-fixtures.js';

export const INET = {
  netns: 'wrnx-inet',
  hostIf: 'xi-wrnt',
  hostIp: '198.18.7.1',
  a: '198.18.7.2', // a.egress.test, and the veth's own address
  b: '198.18.7.10', // b.egress.test, x.wild.egress.test
  dns: '198.18.7.53',
  range: '198.18.7.0/24',
};

/** A plain TCP greeting server on every address of the internet (see serverInNetns). */
export const INET_TCP_PORT = 7000;

/** The names dnsmasq answers (rebind.egress.test: a private address, as a rebinding attacker's DNS would). */
export const NAMES: Record<string, string> = {
  'a.egress.test': INET.a,
  'b.egress.test': INET.b,
  'x.wild.egress.test': INET.b,
  'wild.egress.test': INET.b,
  'rebind.egress.test': '10.224.9.2',
};

export interface Internet {
  caFile: string;
  caPem: string;
  stop(): Promise<void>;
}

const SERVER = `const fs = require('fs'), http = require('http'), https = require('https');
const [cert, key] = process.argv.slice(1);
const chunk = Buffer.alloc(1 << 16);
const answer = (req, res) => {
  const m = req.url.startsWith('/bytes/') ? [req.url, req.url.slice(7)] : null;
  if (m) {
    // A download of n bytes (for the egress proxy benchmark).
    let left = Number(m[1]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
    const more = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once('drain', more);
      }
      res.end();
    };
    return more();
  }
  const body = JSON.stringify({ server: req.socket.localAddress, host: req.headers.host, headers: req.headers });
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
};
let n = 0;
const ready = () => ++n === 2 && console.log('ready');
http.createServer(answer).listen(80, '0.0.0.0', ready);
https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, answer).listen(443, '0.0.0.0', ready);`;

async function certificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const ossl = (args: string[]) => execFileP('openssl', args);
  await ossl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'].concat([
      '-subj',
      '/CN=wrenn egress test CA',
      '-keyout',
      caKey,
      '-out',
      ca,
    ]),
  );
  await ossl(
    ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=egress.test'].concat([
      '-keyout',
      key,
      '-out',
      join(dir, 'csr.pem'),
    ]),
  );
  const san = Object.keys(NAMES)
    .map((n) => `DNS:${n}`)
    .join(',');
  await writeFile(join(dir, 'ext.cnf'), `subjectAltName=${san}\n`);
  await ossl(
    ['x509', '-req', '-in', join(dir, 'csr.pem'), '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '2'].concat([
      '-extfile',
      join(dir, 'ext.cnf'),
      '-out',
      cert,
    ]),
  );
  return { ca, cert, key };
}

export async function removeInternet(): Promise<void> {
  await execIp(['-force', '-batch', '-'], `link del ${INET.hostIf}\nnetns del ${INET.netns}\n`).catch(() => {});
}

export function internetLeftovers(): string[] {
  const out: string[] = [];
  if (existsSync(`/sys/class/net/${INET.hostIf}`)) out.push(`link ${INET.hostIf}`);
  if (existsSync(`/run/netns/${INET.netns}`)) out.push(`netns ${INET.netns}`);
  return out;
}

/** Builds the namespace and starts its servers (processes end with killChildren() and stop()). */
export async function createInternet(): Promise<Internet> {
  await removeInternet();
  // A killed earlier run's resolver lives on in its (now deleted) namespace.
  await killStaleDnsmasq(INET.dns);
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-egress-inet-'));
  const extra = [INET.b, INET.dns];
  await execIp(
    ['-batch', '-'],
    [
      `netns add ${INET.netns}`,
      `link add ${INET.hostIf} type veth peer name eth0 netns ${INET.netns}`,
      `addr add ${INET.hostIp}/30 dev ${INET.hostIf}`,
      `link set ${INET.hostIf} up`,
      ...extra.map((a) => `route add ${a}/32 via ${INET.a} dev ${INET.hostIf}`),
      '',
    ].join('\n'),
  );
  await execIp(
    ['-n', INET.netns, '-batch', '-'],
    [
      'link set lo up',
      `addr add ${INET.a}/30 dev eth0`,
      ...extra.map((a) => `addr add ${a}/32 dev lo`),
      'link set eth0 up',
      `route add default via ${INET.hostIp}`,
      '',
    ].join('\n'),
  );
  const { ca, cert, key } = await certificates(dir);
  await nodeInNetns(INET.netns, `${SERVER}`.replace('process.argv.slice(1)', JSON.stringify([cert, key])));
  await udpEchoInNetns(INET.netns, 5353, INET.b);
  await serverInNetns(INET.netns, INET_TCP_PORT);
  const dnsmasq: ChildProcess = spawn(
    'ip',
    [
      ...['netns', 'exec', INET.netns, 'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts'],
      ...['--bind-interfaces', `--listen-address=${INET.dns}`, '--port=53', '--user=root', '--pid-file='],
      ...Object.entries(NAMES).map(([n, ip]) => `--host-record=${n},${ip}`),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let dnsErr = '';
  dnsmasq.stderr!.on('data', (b: Buffer) => (dnsErr += b));
  // dnsmasq answers once its socket is bound; ask until it does.
  for (let i = 0; ; i++) {
    const r = await execFileP('ip', [
      'netns',
      'exec',
      INET.netns,
      process.execPath,
      '-e',
      RESOLVE,
      INET.dns,
      'a.egress.test',
    ])
      .then((x) => x.stdout.trim())
      .catch(() => '');
    if (r === INET.a) break;
    if (i > 50 || dnsmasq.exitCode !== null) throw new Error(`dnsmasq did not answer: ${dnsErr}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    caFile: ca,
    caPem: await readFile(ca, 'utf8'),
    async stop() {
      dnsmasq.kill('SIGKILL');
      await removeInternet();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A node script: resolve argv[2] at the name server argv[1], print the first address (or the error code). */
export const RESOLVE = `const r = new (require('dns').promises.Resolver)({ timeout: 1500, tries: 1 });
r.setServers([process.argv[1]]);
r.resolve4(process.argv[2]).then((a) => console.log(a[0]), (e) => console.log(e.code));`;
