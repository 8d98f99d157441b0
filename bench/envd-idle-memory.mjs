#!/usr/bin/env node
// envd's idle memory: starts `wrenn envd` as its own process (as the host agent does in a capsule),
// waits for /health, makes a few typical requests (REST, Connect JSON and binary, a process run),
// lets it sit idle, then reads its RSS and PSS. Prints JSON. Needs the build (`npm run build`).
// envd gets the environment a capsule gives it (PATH, HOME, LANG), not this shell's: e.g. a host's
// NODE_EXTRA_CA_CERTS alone adds ~70 ms and a few MB to every node start.
// Usage: node bench/envd-idle-memory.mjs [--idle-ms 3000] [--node-flags "..."] (default: ENVD_NODE_FLAGS) [--http1-only]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';

const TARGET_RSS_MB = 50;
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const idleMs = Number(opt('idle-ms', '3000'));
// The host agent and the sandbox proxy talk HTTP/1.1 to envd; h2c (node:http2, node:tls and
// node:crypto, ~3 MB) is loaded only when a client uses it. --http1-only measures that case.
const http1Only = args.includes('--http1-only');
// By default: what capsules run — the envd bundle with the node flags the namespace runtime passes.
const { ENVD_NODE_FLAGS, ENVD_START } = await import('../packages/envd/dist/src/bundle-layout.js');
const nodeFlags = (opt('node-flags', process.env.WRENN_ENVD_NODE_FLAGS ?? ENVD_NODE_FLAGS.join(' ')) ?? '')
  .split(/\s+/)
  .filter(Boolean);
const ENVD = fileURLToPath(new URL(`../packages/envd/dist/bundle/${ENVD_START}`, import.meta.url));

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

async function waitHealthy(baseUrl, child) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`envd exited with ${child.exitCode} before answering /health`);
    try {
      if ((await fetch(`${baseUrl}/health`)).status === 204) return;
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  throw new Error('envd did not answer /health within 15 s');
}

/** kB fields of a /proc file ("Name:   123 kB") as MiB, two decimals. */
function procMb(path, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(path, 'utf8'));
  return m ? Math.round((Number(m[1]) / 1024) * 100) / 100 : null;
}

async function exercise(baseUrl) {
  await fetch(`${baseUrl}/init`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ envVars: { BENCH: '1' } }),
  });
  await (await fetch(`${baseUrl}/envs`)).text();
  await (await fetch(`${baseUrl}/metrics`)).text();
  for (const [httpVersion, useBinaryFormat] of [
    ['1.1', false],
    [http1Only ? '1.1' : '2', true],
  ]) {
    const transport = createConnectTransport({ baseUrl, httpVersion, useBinaryFormat });
    const proc = createClient(Process, transport);
    const fs = createClient(Filesystem, transport);
    await fs.stat({ path: '/' });
    await fs.listDir({ path: '/', depth: 1 });
    await proc.list({});
    for await (const _ of proc.start({ process: { cmd: '/bin/true', args: [] } })) {
      // drain until the end event
    }
  }
}

const port = await freePort();
const baseUrl = `http://127.0.0.1:${port}`;
// What a capsule passes (minus WRENN_CAPSULE: no port forwarder on the host).
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8' };
const child = spawn(process.execPath, [...nodeFlags, ENVD, '--port', String(port), '--host', '127.0.0.1'], {
  env,
  stdio: ['ignore', 'ignore', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => {
  stderr += d;
});
try {
  const t0 = Date.now();
  await waitHealthy(baseUrl, child);
  const startupMs = Date.now() - t0;
  const rssAfterStartMb = procMb(`/proc/${child.pid}/status`, 'VmRSS');
  await exercise(baseUrl);
  await sleep(idleMs);
  const rss = procMb(`/proc/${child.pid}/status`, 'VmRSS');
  const result = {
    rss_mb: rss,
    pss_mb: procMb(`/proc/${child.pid}/smaps_rollup`, 'Pss'),
    target_rss_mb: TARGET_RSS_MB,
    within_target: rss !== null && rss <= TARGET_RSS_MB,
    rss_after_start_mb: rssAfterStartMb,
    rss_peak_mb: procMb(`/proc/${child.pid}/status`, 'VmHWM'),
    anon_mb: procMb(`/proc/${child.pid}/status`, 'RssAnon'),
    file_mb: procMb(`/proc/${child.pid}/status`, 'RssFile'),
    startup_ms: startupMs,
    idle_ms: idleMs,
    protocols: http1Only ? ['http/1.1'] : ['http/1.1', 'h2c'],
    node_flags: nodeFlags,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} catch (err) {
  process.stderr.write(`envd-idle-memory: ${err.message}\n${stderr}`);
  process.exitCode = 1;
} finally {
  child.kill('SIGTERM');
}
