#!/usr/bin/env node
// Sandbox proxy benchmark (prints JSON): HTTP throughput into a capsule through the control plane's
// proxy against the same server reached directly, in one run (keep-alive, autocannon), and PTY echo
// latency over the native API's WebSocket while the proxy carries that load. Also measured in the
// same run: host routing (what the e2b SDK's getHost uses), and a bare Node TCP pipe to the same
// server (no HTTP at all) as the ceiling any proxy in this process can reach on this machine. The
// direct figure is the mean of a run before and a run after the proxied ones (the machine is shared).
// Run as root after `npm run build`. Traffic goes only to loopback and the capsule's namespace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startUp } from '../packages/control-plane/dist/src/up.js';
import { removeCgroupParent } from './lib/cgroup-parent.mjs';

const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-proxy-'));
const up = await startUp({
  dataDir,
  listen: { host: '127.0.0.1', port: 0 },
  domain: 'localhost',
  logLevel: 'silent',
  network: { pool: '10.217.0.0/24', names: { netnsPrefix: 'wrp-', ifPrefix: 'wp', chainPrefix: 'WRP' }, metadataPort: 31252 },
});
const api = async (method, path, body) => {
  const headers = { 'x-api-key': up.adminKey, ...(body ? { 'content-type': 'application/json' } : {}) };
  const res = await fetch(`${up.url}${path}`, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const round = (x) => Math.round(x * 100) / 100;

// The load generator runs in its own process: in this one it would share the event loop with the
// control plane it is measuring.
const AUTOCANNON = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url));
function load(url, extra = []) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [AUTOCANNON, '-c', String(CONNECTIONS), '-d', String(DURATION), '-j', ...extra, url], { maxBuffer: 16 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout)),
    );
  });
}

const result = { bench: 'proxy', connections: CONNECTIONS, seconds: DURATION };
let capsuleId;
let pipe;
try {
  const capsule = await api('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 });
  capsuleId = capsule.id;
  const rec = up.agent.manager.get(capsuleId);
  // A keep-alive HTTP server inside the capsule answering 1 KiB (the capsule's own node, via envd's runtime).
  const envd = up.agent.manager.envdFor(capsuleId);
  const server = "require('http').createServer((q,s)=>s.end('x'.repeat(1024))).listen(8080,'0.0.0.0')";
  const started = envd.process.start({
    process: { cmd: '/opt/wrenn/runtime/lib/ld-linux-x86-64.so.2', args: ['--library-path', '/opt/wrenn/runtime/lib', '/opt/wrenn/runtime/bin/node', '-e', server], envs: {} },
  });
  void (async () => {
    try {
      for await (const _ of started) {
        // drain
      }
    } catch {}
  })();
  const direct = `http://${rec.address}:8080/index.html`;
  const proxied = `${up.url}/proxy/${capsuleId}/8080/index.html`;
  for (let i = 0; i < 50; i++) {
    if ((await fetch(direct).then((r) => r.status).catch(() => 0)) === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if ((await fetch(proxied)).status !== 200) throw new Error('the proxy does not reach the capsule server');

  // The ceiling: a bare TCP pipe in this process to the same server.
  pipe = net.createServer((c) => {
    const u = net.connect(8080, rec.address);
    c.setNoDelay(true);
    u.setNoDelay(true);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  await new Promise((r) => pipe.listen(0, '127.0.0.1', r));
  const piped = `http://127.0.0.1:${pipe.address().port}/index.html`;

  const d1 = await load(direct);
  // PTY echo latency measured while the proxy is under load.
  const ws = new WebSocket(`${up.url.replace('http', 'ws')}/v1/capsules/${capsuleId}/pty?cols=80&rows=24&api_key=${up.adminKey}`);
  await new Promise((res, rej) => {
    ws.once('open', res);
    ws.once('error', rej);
  });
  let pending;
  ws.on('message', (data, isBinary) => {
    if (isBinary && pending && data.includes(pending.ch)) {
      pending.done(performance.now() - pending.t);
      pending = undefined;
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  const echoes = [];
  const proxiedLoad = load(proxied);
  const until = Date.now() + (DURATION - 1) * 1000;
  let n = 0;
  while (Date.now() < until) {
    const ch = String.fromCharCode(97 + (n++ % 26));
    const ms = await new Promise((resolve) => {
      pending = { ch, t: performance.now(), done: resolve };
      ws.send(Buffer.from(ch));
      setTimeout(() => resolve(undefined), 2000);
    });
    if (ms !== undefined) echoes.push(ms);
    if (n % 40 === 0) ws.send(Buffer.from('\x15')); // Ctrl-U: clear the line
    await new Promise((r) => setTimeout(r, 20));
  }
  const p = await proxiedLoad;
  ws.close();
  const h = await load(`${up.url}/index.html`, ['-H', `host=8080-${capsuleId}.localhost`]);
  const tp = await load(piped);
  const d2 = await load(direct);
  const figures = (r) => ({ req_per_s: Math.round(r.requests.average), mb_per_s: round(r.throughput.average / 1e6), p50_latency_ms: r.latency.p50, errors: r.errors + r.non2xx });
  const directRate = (d1.requests.average + d2.requests.average) / 2;
  result.direct = { ...figures(d1), req_per_s: Math.round(directRate), runs_req_per_s: [Math.round(d1.requests.average), Math.round(d2.requests.average)] };
  result.proxied = figures(p);
  result.proxied_host = figures(h);
  result.tcp_pipe = figures(tp);
  result.throughput_ratio = round(p.requests.average / directRate);
  result.throughput_ratio_host = round(h.requests.average / directRate);
  result.tcp_pipe_ratio = round(tp.requests.average / directRate);
  result.throughput_ratio_target = 0.8;
  result.pty_echo_under_load = { samples: echoes.length, p50_ms: round(pct(echoes, 50)), p99_ms: round(pct(echoes, 99)), target_p99_ms: 50 };
} finally {
  pipe?.close();
  if (capsuleId) await api('DELETE', `/v1/capsules/${capsuleId}`).catch(() => undefined);
  await up.close();
  await up.layers.networkManager.removeAll().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
  removeCgroupParent('wrenn');
}
console.log(JSON.stringify(result, null, 2));
