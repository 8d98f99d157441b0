#!/usr/bin/env node
// Sandbox proxy benchmark (prints JSON): HTTP throughput into a capsule through the control plane's
// proxy against the same server reached directly, in one run (keep-alive, autocannon), and PTY echo
// latency over the native API's WebSocket while the proxy carries that load.
// Run as root after `npm run build`. Traffic goes only to loopback and the capsule's namespace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startUp } from '../packages/control-plane/dist/src/up.js';

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
const headers = { 'x-api-key': up.adminKey, 'content-type': 'application/json' };
const api = async (method, path, body) => {
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
function load(url) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [AUTOCANNON, '-c', String(CONNECTIONS), '-d', String(DURATION), '-j', url], { maxBuffer: 16 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout)),
    );
  });
}

const result = { bench: 'proxy', connections: CONNECTIONS, seconds: DURATION };
let capsuleId;
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

  const d = await load(direct);
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
  result.direct = { req_per_s: Math.round(d.requests.average), mb_per_s: round(d.throughput.average / 1e6), p50_latency_ms: d.latency.p50, errors: d.errors + d.non2xx };
  result.proxied = { req_per_s: Math.round(p.requests.average), mb_per_s: round(p.throughput.average / 1e6), p50_latency_ms: p.latency.p50, errors: p.errors + p.non2xx };
  result.throughput_ratio = round(p.requests.average / d.requests.average);
  result.throughput_ratio_target = 0.8;
  result.pty_echo_under_load = { samples: echoes.length, p50_ms: round(pct(echoes, 50)), p99_ms: round(pct(echoes, 99)), target_p99_ms: 50 };
} finally {
  if (capsuleId) await api('DELETE', `/v1/capsules/${capsuleId}`).catch(() => undefined);
  await up.close();
  await up.layers.networkManager.removeAll().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
