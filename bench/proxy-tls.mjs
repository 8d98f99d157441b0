#!/usr/bin/env node
import { execFile } from 'node:child_process';
// Sandbox proxy over TLS (prints JSON): the E2B_DOMAIN deployment, where clients reach a capsule's
// port at https://<P>-<id>.<domain> on the control plane's TLS listener (`--tls self-signed`, host
// routing), against the same server reached directly over TLS, in one run. The capsule runs one
// node server: plain HTTP on 8080 (what the proxy forwards to) and HTTPS with HTTP/1.1 and HTTP/2 by
// ALPN on 8443 with the same certificate (the direct figures). HTTP/1.1 load: wrk (one thread, 16
// keep-alive connections); HTTP/2 load: h2load (Debian's nghttp2-client; 16 connections, 8 streams
// each). Direct figures are the mean of a run before and one after the proxied ones. Each run also
// reports CPU per request: this process (control plane with its relay and TLS threads) and the
// capsule's cgroup. The defaults measure the native TLS front with h2 terminated in it (streams
// carried as HTTP/1.1 by the relay); `WRENN_TLS_H2=node` measures h2 on Node's session with the h2
// stream path, and `WRENN_TLS_FRONT=node WRENN_PROXY_H2_STREAMS=0` Node's TLS and the compat path.
// Run as root after `npm run build`; traffic goes only to loopback and the capsule's namespace.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { relayStats, tlsFrontStats } from '@wrenn/native';
import { Agent, fetch } from 'undici';
import { startBenchStack } from './lib/bench-stack.mjs';

const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const STREAMS = Number(process.env.BENCH_H2_STREAMS ?? 8);
const DOMAIN = 'wrenn.test';
const round = (x) => Math.round(x * 100) / 100;
// Its own api(): over TLS to the domain's certificate, which the stack's helper does not speak.
const stack = await startBenchStack(
  'proxy-tls',
  { pool: '10.217.1.0/24', prefix: 't', metadataPort: 31253 },
  { domain: DOMAIN, tls: 'self-signed' },
);
const { up, dataDir } = stack;
const port = up.cp.port;
const dispatcher = new Agent({ connect: { ca: readFileSync(up.cp.caFile), servername: `api.${DOMAIN}` } });
const api = async (method, path, body) => {
  const headers = { 'x-api-key': up.adminKey, ...(body ? { 'content-type': 'application/json' } : {}) };
  const res = await fetch(`https://127.0.0.1:${port}${path}`, {
    method,
    headers,
    dispatcher,
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
};

const run = (cmd, args) =>
  new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, out) => (err ? reject(err) : resolve(out))),
  );

/** HTTP/1.1 over TLS with wrk: req/s, p50 latency (ms), errors. */
async function wrk(url, headers = {}) {
  const out = await run('wrk', [
    '-t',
    '1',
    '-c',
    String(CONNECTIONS),
    '-d',
    `${DURATION}s`,
    '--latency',
    ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
    url,
  ]);
  const num = (re) => Number(re.exec(out)?.[1] ?? 0);
  const unit = { us: 1e-3, ms: 1, s: 1000 };
  const p50 = /\s50%\s+([\d.]+)(us|ms|s)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    req_per_s: Math.round(num(/Requests\/sec:\s+([\d.]+)/)),
    p50_latency_ms: p50 ? round(Number(p50[1]) * unit[p50[2]]) : null,
    errors: num(/Non-2xx or 3xx responses: (\d+)/) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

/** HTTP/2 over TLS with h2load: req/s, errors (connectTo: where to connect instead of the URL's host). */
async function h2load(url, connectTo) {
  const out = await run('h2load', [
    '-c',
    String(CONNECTIONS),
    '-m',
    String(STREAMS),
    '-D',
    String(DURATION),
    ...(connectTo ? [`--connect-to=${connectTo}`] : []),
    url,
  ]);
  const reqs = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
  const st = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const proto = /Application protocol: (\S+)/.exec(out);
  return {
    req_per_s: reqs ? Math.round(Number(reqs[1])) : 0,
    protocol: proto ? proto[1] : null,
    errors: st ? Number(st[2]) + Number(st[3]) : null,
  };
}

/** CPU time so far (µs): this process (control plane, agent, relay and TLS threads) and the capsule's cgroup. */
function cpuNow(capsuleId) {
  const u = process.cpuUsage();
  let capsule = 0;
  const base = `/sys/fs/cgroup/cpuacct/${stack.cgroupParent}`;
  const dir = existsSync(base) ? readdirSync(base).find((d) => d.includes(capsuleId)) : undefined;
  if (dir) capsule = Number(readFileSync(join(base, dir, 'cpuacct.usage'), 'utf8')) / 1000;
  return { cp: u.user + u.system, capsule };
}

/** Runs a load and adds its CPU per request (µs) for the control plane and the capsule. */
async function measured(capsuleId, load) {
  const a = cpuNow(capsuleId);
  const r = await load();
  const b = cpuNow(capsuleId);
  const n = Math.max(1, r.req_per_s * DURATION);
  return {
    ...r,
    cpu_us_per_req: { control_plane: Math.round((b.cp - a.cp) / n), capsule: Math.round((b.capsule - a.capsule) / n) },
  };
}

const result = {
  bench: 'proxy-tls',
  tls_front: process.env.WRENN_TLS_FRONT || 'native',
  tls_h2: process.env.WRENN_TLS_H2 || 'native',
  h2_streams: process.env.WRENN_PROXY_H2_STREAMS !== '0',
  loaders: { h1: 'wrk (1 thread)', h2: `h2load (${STREAMS} streams per connection)` },
  connections: CONNECTIONS,
  seconds: DURATION,
};
let capsuleId;
try {
  const capsule = await api('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 });
  capsuleId = capsule.id;
  const rec = up.agent.manager.get(capsuleId);
  const tlsDir = join(dataDir, 'tls');
  const server =
    "const b='x'.repeat(1024);require('http').createServer((q,s)=>s.end(b)).listen(8080,'0.0.0.0');" +
    "require('http2').createSecureServer({key:process.env.K,cert:process.env.C,allowHTTP1:true},(q,s)=>s.end(b)).listen(8443,'0.0.0.0')";
  const started = up.agent.manager.envdFor(capsuleId).process.start({
    process: {
      cmd: '/opt/wrenn/runtime/lib/ld-linux-x86-64.so.2',
      args: ['--library-path', '/opt/wrenn/runtime/lib', '/opt/wrenn/runtime/bin/node', '-e', server],
      envs: {
        K: readFileSync(join(tlsDir, `${DOMAIN}.key`), 'utf8'),
        C: readFileSync(join(tlsDir, `${DOMAIN}.crt`), 'utf8'),
      },
    },
  });
  void (async () => {
    try {
      for await (const _ of started) {
        // drain
      }
    } catch {}
  })();
  const host = `8080-${capsuleId}.${DOMAIN}`;
  const direct = `https://${rec.address}:8443/`;
  const proxied = `https://127.0.0.1:${port}/`;
  const capsuleAgent = new Agent({ connect: { rejectUnauthorized: false } });
  for (let i = 0; i < 50; i++) {
    const ok = await fetch(direct, { dispatcher: capsuleAgent })
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const check = await fetch(`https://${host}:${port}/`, {
    dispatcher: new Agent({
      connect: {
        ca: readFileSync(up.cp.caFile),
        lookup: (_h, _o, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]),
      },
    }),
  });
  if (check.status !== 200) throw new Error(`the proxy does not reach the capsule server: ${check.status}`);

  const m = (load) => measured(capsuleId, load);
  const d1 = await m(() => wrk(direct));
  const h1 = await m(() => wrk(proxied, { Host: host }));
  const d2 = await m(() => wrk(direct));
  const directH1 = (d1.req_per_s + d2.req_per_s) / 2;
  const e1 = await m(() => h2load(`https://${host}/`, `${rec.address}:8443`));
  const h2 = await m(() => h2load(`https://${host}:${port}/`, `127.0.0.1:${port}`));
  const e2 = await m(() => h2load(`https://${host}/`, `${rec.address}:8443`));
  result.native = { relay: relayStats(), tls_front: tlsFrontStats() };
  const directH2 = (e1.req_per_s + e2.req_per_s) / 2;
  result.h1 = {
    direct: { ...d1, req_per_s: Math.round(directH1), runs_req_per_s: [d1.req_per_s, d2.req_per_s] },
    proxied_host: h1,
    throughput_ratio: round(h1.req_per_s / directH1),
  };
  result.h2 = {
    direct: { ...e1, req_per_s: Math.round(directH2), runs_req_per_s: [e1.req_per_s, e2.req_per_s] },
    proxied_host: h2,
    throughput_ratio: round(h2.req_per_s / directH2),
  };
  result.throughput_ratio_target = 0.8;
} finally {
  if (capsuleId) await api('DELETE', `/v1/capsules/${capsuleId}`).catch(() => undefined);
  await stack.stop();
}
console.log(JSON.stringify(result, null, 2));
