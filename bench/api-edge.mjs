#!/usr/bin/env node
// API edge benchmark (prints JSON): /health latency (p50/p99) on an idle control plane and while
// callers without a key push 48 MB bodies at the E2B and native create routes without pause and hold
// 100 slow-body connections; the time to their 401 and the bytes the server read of each body. The
// control plane runs without hosts (no capsule is needed for the edge); traffic stays on loopback.
// Run after `npm run build`.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../packages/control-plane/dist/src/server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const UPLOADERS = Number(process.env.BENCH_UPLOADERS ?? 4);
const BODY = 48 << 20;

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-edge-'));
const cp = await startControlPlane({
  listen: { host: '127.0.0.1', port: 0 },
  dataDir,
  domain: 'localhost',
  publicUrl: 'http://127.0.0.1',
  logLevel: 'silent',
  stateLoops: false,
});
cp.ctx.readiness.ready = true;
const reads = new Map();
cp.app.server.on('connection', (s) => {
  const port = s.remotePort;
  s.once('close', () => reads.set(port, s.bytesRead));
});

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2)) : null;
};

async function healthLatencies(ms) {
  const out = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t0 = performance.now();
    const r = await fetch(`${cp.url}/health`);
    await r.arrayBuffer();
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

/** One unauthenticated 48 MB upload: ms to the 401 and the client's port. */
function upload(path) {
  return new Promise((resolve) => {
    const s = net.connect(cp.port, '127.0.0.1');
    const t0 = performance.now();
    let first = 0;
    let port = 0;
    s.on('data', () => {
      first ||= performance.now() - t0;
    });
    s.on('error', () => undefined);
    // A server that keeps the connection after its 401 (reading the rest) is left after 20 s.
    const guard = setTimeout(() => s.destroy(), 20_000);
    s.on('close', () => {
      clearTimeout(guard);
      resolve({ ms: first, port });
    });
    s.once('connect', () => {
      port = s.localPort;
      s.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${BODY}\r\n\r\n`);
      const chunk = Buffer.alloc(256 << 10, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < BODY && !s.destroyed) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    });
  });
}

function slowBody(path, ms) {
  const s = net.connect(cp.port, '127.0.0.1');
  s.on('error', () => undefined);
  s.once('connect', () => s.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n{`));
  const t = setInterval(() => s.writable && s.write(' '), 500);
  return new Promise((resolve) => {
    const guard = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, ms);
    s.once('close', () => {
      clearInterval(t);
      clearTimeout(guard);
      resolve(true);
    });
  });
}

try {
  const idle = await healthLatencies(SECONDS * 1000);
  let stop = false;
  const uploads = [];
  const uploaders = Array.from({ length: UPLOADERS }, async (_, i) => {
    while (!stop) uploads.push(await upload(i % 2 ? '/sandboxes' : '/v1/capsules'));
  });
  const slow = Array.from({ length: 100 }, (_, i) => slowBody(i % 2 ? '/sandboxes' : '/v1/capsules', 60_000));
  const loaded = await healthLatencies(SECONDS * 1000);
  stop = true;
  await Promise.all(uploaders);
  const slowClosed = (await Promise.all(slow)).filter(Boolean).length;
  await new Promise((r) => setTimeout(r, 100));
  const readBytes = uploads.map((u) => reads.get(u.port) ?? 0);
  console.log(
    JSON.stringify({
      health_idle_ms: { p50: pct(idle, 50), p99: pct(idle, 99), n: idle.length },
      health_under_attack_ms: { p50: pct(loaded, 50), p99: pct(loaded, 99), n: loaded.length },
      unauthenticated_uploads: uploads.length,
      upload_body_bytes: BODY,
      time_to_401_ms: {
        p50: pct(
          uploads.map((u) => u.ms),
          50,
        ),
        p99: pct(
          uploads.map((u) => u.ms),
          99,
        ),
      },
      server_read_bytes_per_upload: { p50: pct(readBytes, 50), max: Math.max(0, ...readBytes) },
      slow_body_connections_closed: `${slowClosed}/100`,
    }),
  );
} finally {
  await cp.close();
  rmSync(dataDir, { recursive: true, force: true });
}
