#!/usr/bin/env node
import { execFile, spawnSync } from 'node:child_process';
// Sandbox proxy benchmark (prints JSON): HTTP throughput into a capsule through the control plane's
// proxy against the same server reached directly, in one run (keep-alive, 16 connections), by each
// routing (path /proxy/<id>/<P>/, host <P>-<id>.<domain> as the e2b SDK's getHost gives, and the
// E2b-Sandbox-Id/-Port headers), plus a bare Node TCP pipe to the same server (no HTTP) for scale.
// The direct figure is the mean of a run before and a run after the proxied ones (the machine is
// shared). Then PTY echo latency over the native API's WebSocket while the proxy carries that load
// (path routing), with the throughput of that run. The load generator is wrk (Debian's package, one
// thread: it leaves the most of this 2-core machine to what is measured), else autocannon in its own
// process (BENCH_LOADER=autocannon forces it). Run as root after `npm run build`. Traffic goes only
// to loopback and the capsule's namespace.
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startBenchStack } from './lib/bench-stack.mjs';

const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const stack = await startBenchStack('proxy', { pool: '10.217.0.0/24', prefix: 'p', metadataPort: 31252 });
const { up, api } = stack;
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const round = (x) => Math.round(x * 100) / 100;

// The load generator runs in its own process: in this one it would share the event loop with the
// control plane it is measuring.
const AUTOCANNON = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url));
const haveWrk = spawnSync('wrk', ['--version']).error === undefined;
const LOADER = process.env.BENCH_LOADER ?? (haveWrk ? 'wrk' : 'autocannon');

/** Figures of one load run: req/s, MB/s, p50 latency (ms), errors (socket errors and non-2xx). */
function load(url, headers = {}) {
  const hs = Object.entries(headers);
  if (LOADER === 'wrk') {
    const args = [
      '-t',
      '1',
      '-c',
      String(CONNECTIONS),
      '-d',
      `${DURATION}s`,
      '--latency',
      ...hs.flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
      url,
    ];
    return new Promise((resolve, reject) => {
      execFile('wrk', args, (err, out) => {
        if (err) return reject(err);
        const num = (re) => Number(re.exec(out)?.[1] ?? 0);
        const unit = { us: 1e-3, ms: 1, s: 1000 };
        const p50 = /\s50%\s+([\d.]+)(us|ms|s)/.exec(out);
        const mb = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
        const scale = { B: 1e-6, KB: 1.024e-3, MB: 1.048576, GB: 1073.741824 };
        const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
        resolve({
          req_per_s: Math.round(num(/Requests\/sec:\s+([\d.]+)/)),
          mb_per_s: mb ? round(Number(mb[1]) * scale[mb[2]]) : 0,
          p50_latency_ms: p50 ? round(Number(p50[1]) * unit[p50[2]]) : null,
          errors:
            num(/Non-2xx or 3xx responses: (\d+)/) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
        });
      });
    });
  }
  const args = [
    AUTOCANNON,
    '-c',
    String(CONNECTIONS),
    '-d',
    String(DURATION),
    '-j',
    ...hs.flatMap(([k, v]) => ['-H', `${k}=${v}`]),
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const r = JSON.parse(stdout);
      resolve({
        req_per_s: Math.round(r.requests.average),
        mb_per_s: round(r.throughput.average / 1e6),
        p50_latency_ms: r.latency.p50,
        errors: r.errors + r.non2xx,
      });
    });
  });
}

const result = {
  bench: 'proxy',
  loader: LOADER === 'wrk' ? 'wrk (1 thread)' : 'autocannon',
  connections: CONNECTIONS,
  seconds: DURATION,
};
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
    process: {
      cmd: '/opt/wrenn/runtime/lib/ld-linux-x86-64.so.2',
      args: ['--library-path', '/opt/wrenn/runtime/lib', '/opt/wrenn/runtime/bin/node', '-e', server],
      envs: {},
    },
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
    if (
      (await fetch(direct)
        .then((r) => r.status)
        .catch(() => 0)) === 200
    )
      break;
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
  const p = await load(proxied);
  const h = await load(`${up.url}/index.html`, { Host: `8080-${capsuleId}.localhost` });
  const hd = await load(`${up.url}/index.html`, { 'E2b-Sandbox-Id': capsuleId, 'E2b-Sandbox-Port': '8080' });
  const tp = await load(piped);
  const d2 = await load(direct);
  const directRate = (d1.req_per_s + d2.req_per_s) / 2;
  result.direct = { ...d1, req_per_s: Math.round(directRate), runs_req_per_s: [d1.req_per_s, d2.req_per_s] };
  result.proxied = p;
  result.proxied_host = h;
  result.proxied_header = hd;
  result.tcp_pipe = tp;
  result.throughput_ratio = round(p.req_per_s / directRate);
  result.throughput_ratio_host = round(h.req_per_s / directRate);
  result.throughput_ratio_header = round(hd.req_per_s / directRate);
  result.tcp_pipe_ratio = round(tp.req_per_s / directRate);
  result.throughput_ratio_target = 0.8;

  // PTY echo latency measured while the proxy is under load (path routing).
  const ws = new WebSocket(
    `${up.url.replace('http', 'ws')}/v1/capsules/${capsuleId}/pty?cols=80&rows=24&api_key=${up.adminKey}`,
  );
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
  const loaded = load(proxied);
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
  const underPty = await loaded;
  ws.close();
  result.pty_echo_under_load = {
    samples: echoes.length,
    p50_ms: round(pct(echoes, 50)),
    p99_ms: round(pct(echoes, 99)),
    target_p99_ms: 50,
    proxied_req_per_s: underPty.req_per_s,
  };
} finally {
  pipe?.close();
  if (capsuleId) await api('DELETE', `/v1/capsules/${capsuleId}`).catch(() => undefined);
  await stack.stop();
}
console.log(JSON.stringify(result, null, 2));
