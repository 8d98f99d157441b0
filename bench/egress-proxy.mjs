#!/usr/bin/env node
import { execFile } from 'node:child_process';
// The egress proxy's cost (prints JSON): a capsule network (namespace, veth, firewall of the host
// agent) downloads over HTTPS from the egress tests' own "internet" (a namespace in 198.18.7.0/24,
// see @wrenn/host-agent/testing/egress), in the same run:
// - off: no policy (the kernel forwards; NAT only);
// - domains: denyOut 0.0.0.0/0 + allowOut the name (TCP 443 redirected to the proxy, which reads
//   the SNI, resolves and hands the connection to the native relay);
// - rules: the same plus a header rule (the proxy terminates TLS with the egress CA and re-sends).
// Connection setup: curl's time to TLS established (time_appconnect), BENCH_N runs (default 30);
// throughput: BENCH_MB MiB downloads (default 256), median of BENCH_ROUNDS (default 5). The cases
// take turns so the machine's load hits them alike. curl runs inside the namespace. The proxy moves
// judged connections on the native relay (WRENN_RELAY_MODE=splice: its splice mode).
// Run as root after `npm run build`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadEgressCa, NetworkManager } from '@wrenn/host-agent';
import { createInternet, INET, killChildren, removeInternet } from '@wrenn/host-agent/testing/egress';
import { latencyStats } from './lib/latency-stats.mjs';

const execFileP = promisify(execFile);
const N = Number(process.env.BENCH_N ?? 30);
const MB = Number(process.env.BENCH_MB ?? 256);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-egress-'));
const net = new NetworkManager({
  dataDir,
  pool: '10.226.0.0/24',
  names: { netnsPrefix: 'wrbe-', ifPrefix: 'wbe', chainPrefix: 'WRBE' },
  metadataPort: 31390,
  dnsServers: [INET.dns],
  egressAllow: [INET.range],
  rateMbit: 0,
});
const out = { mib: MB, n: N };
let inet;
let proxy;
try {
  await net.removeAll();
  await net.init();
  inet = await createInternet();
  const ca = await loadEgressCa(dataDir);
  proxy = await net.startEgressProxy({ ca, upstreamCa: [inet.caPem] });
  const cas = join(dataDir, 'cas.pem');
  writeFileSync(cas, `${inet.caPem}\n${ca.certPem}`);
  const cases = {
    off: {},
    domains: { denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test'] },
    rules: {
      denyOut: ['0.0.0.0/0'],
      allowOut: ['a.egress.test'],
      rules: { 'a.egress.test': [{ transform: { headers: { 'X-Bench': '1' } } }] },
    },
  };
  // The cases take turns (setups one by one, downloads round by round): the machine's load moves.
  const nets = {};
  for (const [name, policy] of Object.entries(cases)) {
    nets[name] = await net.create({ id: `cl-bench-${name}`, internet: true, ...policy });
  }
  // Async: the proxy runs in this process's event loop.
  const curl = async (name, path, fmt) =>
    (
      await execFileP('ip', [
        ...['netns', 'exec', nets[name].netnsName, 'curl', '-sS', '--cacert', cas, '-o', '/dev/null'],
        ...['--resolve', `a.egress.test:443:${INET.a}`, '-w', fmt, `https://a.egress.test${path}`],
      ])
    ).stdout;
  const setup = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  const speeds = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < N; i++)
    for (const name of Object.keys(cases)) setup[name].push(Number(await curl(name, '/', '%{time_appconnect}')) * 1000);
  for (let i = 0; i < ROUNDS; i++)
    for (const name of Object.keys(cases))
      speeds[name].push(Number(await curl(name, `/bytes/${MB << 20}`, '%{speed_download}')) / 2 ** 20);
  for (const name of Object.keys(cases)) {
    const s = speeds[name].sort((a, b) => a - b);
    out[name] = {
      tls_setup: latencyStats(setup[name], { digits: 2 }),
      download_mib_s: Math.round(s[s.length >> 1]),
      runs_mib_s: s.map(Math.round),
    };
    await net.destroy(nets[name].id);
  }
  out.ratio_domains = Math.round((out.domains.download_mib_s / out.off.download_mib_s) * 100) / 100;
  out.ratio_rules = Math.round((out.rules.download_mib_s / out.off.download_mib_s) * 100) / 100;
} finally {
  killChildren();
  await proxy?.close();
  await inet?.stop();
  await removeInternet();
  await net.removeAll().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out, null, 2));
