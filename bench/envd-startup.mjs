#!/usr/bin/env node
// envd's start-up time as a capsule sees it: spawn the envd bundle with the namespace runtime's
// node flags and a pipe as fd 3 (WRENN_READY_FD, on which envd says "ready" once it listens: what
// the capsule's init waits for), then run the first command (`Start /bin/true` until its end
// event, Connect JSON over HTTP/1.1, what the host agent's first exec does) on a new connection.
// Compared, in the same run and interleaved, with `node -e 0`. Prints JSON. Needs the build.
// Usage: node bench/envd-startup.mjs [--runs 20] [--gap-ms 0] [--node-flags "..."] [--bundle path]...
// Several --bundle (and matching --node-flags) are measured interleaved, to compare variants.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const runs = Number(opt('runs', '20'));
// Time between ready and the first command: in a capsule, the init tells the agent, which answers
// its client, which sends the command (~10 ms here). 0 = at once.
const gapMs = Number(opt('gap-ms', '0'));
const { ENVD_NODE_FLAGS, ENVD_START } = await import('../packages/envd/dist/src/bundle-layout.js');
const all = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const bundles = all('bundle');
if (bundles.length === 0)
  bundles.push(fileURLToPath(new URL(`../packages/envd/dist/bundle/${ENVD_START}`, import.meta.url)));
const flagSets = all('node-flags');
const variants = bundles.map((bundle, i) => ({
  bundle,
  nodeFlags: (flagSets[i] ?? flagSets[0] ?? process.env.WRENN_ENVD_NODE_FLAGS ?? ENVD_NODE_FLAGS.join(' '))
    .split(/\s+/)
    .filter(Boolean),
}));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One raw HTTP/1.1 request; resolves with the response text, rejects when nothing listens. */
function rawRequest(port, text) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let out = '';
    s.once('error', reject);
    s.on('data', (d) => {
      out += d;
    });
    s.once('end', () => resolve(out));
    s.once('connect', () => s.write(text));
  });
}

function startRequest() {
  const body = JSON.stringify({ process: { cmd: '/bin/true', args: [] } });
  // Connect server-streaming over JSON: one enveloped message (flag 0, 4-byte big-endian length).
  const env = Buffer.alloc(5 + Buffer.byteLength(body));
  env.writeUInt32BE(Buffer.byteLength(body), 1);
  env.write(body, 5);
  return Buffer.concat([
    Buffer.from(
      'POST /process.Process/Start HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n' +
        `Content-Type: application/connect+json\r\nConnect-Protocol-Version: 1\r\nContent-Length: ${env.length}\r\n\r\n`,
    ),
    env,
  ]);
}

async function oneEnvd({ bundle, nodeFlags }) {
  const port = await freePort();
  // The environment a capsule's envd gets (no NODE_OPTIONS, NODE_EXTRA_CA_CERTS etc. of this host).
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', WRENN_READY_FD: '3' };
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, bundle, '--port', String(port), '--host', '127.0.0.1'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  try {
    let said = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`envd said nothing on its ready pipe within 15 s: ${stderr}`)),
        15_000,
      );
      child.stdio[3].on('data', (d) => {
        said += d;
        if (said.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`envd exited with ${code}: ${stderr}`)));
    });
    const readyMs = performance.now() - t0;
    if (gapMs > 0) await sleep(gapMs);
    const t1 = performance.now();
    const res = await rawRequest(port, startRequest());
    const execMs = performance.now() - t1;
    if (!res.includes('"end"')) throw new Error(`first Start had no end event: ${res}`);
    return { readyMs, execMs, totalMs: readyMs + execMs };
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit').catch(() => {});
  }
}

async function bareNode() {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['-e', '0'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
    stdio: 'ignore',
  });
  await once(child, 'exit');
  return performance.now() - t0;
}

const p50 = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.floor(s.length / 2)] * 10) / 10;
};
const results = variants.map(() => ({ ready: [], exec: [], total: [] }));
const bare = [];
for (const v of variants) await oneEnvd(v); // warm the page cache and this process's own code paths
for (let i = 0; i < runs; i++) {
  for (const [j, v] of variants.entries()) {
    const r = await oneEnvd(v);
    results[j].ready.push(r.readyMs);
    results[j].exec.push(r.execMs);
    results[j].total.push(r.totalMs);
  }
  bare.push(await bareNode());
}
const report = variants.map((v, j) => ({
  bundle: v.bundle,
  node_flags: v.nodeFlags,
  ready_p50_ms: p50(results[j].ready),
  first_exec_p50_ms: p50(results[j].exec),
  ready_plus_exec_p50_ms: p50(results[j].total),
}));
process.stdout.write(
  `${JSON.stringify({ runs, gap_ms: gapMs, bare_node_p50_ms: p50(bare), node: process.version, ...(report.length === 1 ? report[0] : { variants: report }) }, null, 2)}\n`,
);
