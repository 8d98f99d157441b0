#!/usr/bin/env node
// Exec round trip through envd: Start(`true`) until its end event, over a keep-alive HTTP/1.1
// and an h2c Connect transport, against spawning `true` directly in Node until 'exit'.
// envd runs in this process (imported from the built dist) or, with --separate-process, in its own
// Node process as in a capsule: the envd bundle (start.cjs) with the capsule's node flags
// (ENVD_NODE_FLAGS, or --node-flags "..."). Samples are interleaved so drift hits both sides alike.
// Prints JSON. Needs the build: `npm run build` (--separate-process runs the bundle).
// Usage: node bench/envd-exec.mjs [--iterations 300] [--warmup 50] [--binary] [--separate-process] [--node-flags "..."]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const iterations = opt('iterations', 300);
const warmup = opt('warmup', 50);
const binary = args.includes('--binary');
const separateProcess = args.includes('--separate-process');
const TRUE = '/bin/true';

const serverUrl = new URL('../packages/envd/dist/src/server.js', import.meta.url);
const { ENVD_NODE_FLAGS, ENVD_START } = await import('../packages/envd/dist/src/bundle-layout.js');
const flagsAt = args.indexOf('--node-flags');
const nodeFlags = flagsAt >= 0 ? args[flagsAt + 1].split(/\s+/).filter(Boolean) : [...ENVD_NODE_FLAGS];

async function startServer() {
  if (!separateProcess) {
    const { startEnvd } = await import(serverUrl.href);
    const s = await startEnvd({ port: 0, host: '127.0.0.1', portForwarding: false });
    return { port: s.port, stop: () => s.close() };
  }
  const bundle = fileURLToPath(new URL(`../packages/envd/dist/bundle/${ENVD_START}`, import.meta.url));
  // The environment a capsule gives envd (without WRENN_CAPSULE: no port forwarder on the host).
  const child = spawn(process.execPath, [...nodeFlags, bundle, '--port', '0', '--host', '127.0.0.1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let out = '';
  for await (const chunk of child.stderr) {
    out += chunk;
    const m = /"msg":"envd listening","port":(\d+)/.exec(out);
    if (m) {
      child.stderr.resume();
      return { port: Number(m[1]), stop: () => child.kill('SIGTERM') };
    }
  }
  throw new Error(`envd did not start: ${out}`);
}

function directOnce() {
  const t0 = process.hrtime.bigint();
  const child = spawn(TRUE, [], { stdio: ['ignore', 'pipe', 'pipe'] });
  return once(child, 'exit').then(() => Number(process.hrtime.bigint() - t0) / 1e6);
}

async function envdOnce(client) {
  const t0 = process.hrtime.bigint();
  let sawEnd = false;
  for await (const res of client.start({ process: { cmd: TRUE, args: [] }, stdin: false })) {
    if (res.event?.event.case === 'end') sawEnd = true;
  }
  if (!sawEnd) throw new Error('stream ended without an end event');
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const round = (x) => Math.round(x * 1000) / 1000;
  return {
    p50: round(q(0.5)),
    p90: round(q(0.9)),
    p99: round(q(0.99)),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

const server = await startServer();
const baseUrl = `http://127.0.0.1:${server.port}`;
const clients = {
  http1: createClient(Process, createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: binary })),
  h2c: createClient(Process, createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: binary })),
};
const samples = { direct: [], http1: [], h2c: [], list: [] };
// CPU time (user+system) of this process per exec: less sensitive than wall time to other load on
// the machine. With envd in this process it covers client, server and the fork, like `direct`.
const cpu = { direct: 0, http1: 0, h2c: 0, list: 0 };
async function measure(kind, fn) {
  const c0 = process.cpuUsage();
  samples[kind].push(await fn());
  const d = process.cpuUsage(c0);
  cpu[kind] += d.user + d.system;
}
try {
  for (let i = 0; i < warmup; i++) {
    await directOnce();
    await envdOnce(clients.http1);
    await envdOnce(clients.h2c);
  }
  for (let i = 0; i < iterations; i++) {
    await measure('direct', directOnce);
    await measure('http1', () => envdOnce(clients.http1));
    await measure('h2c', () => envdOnce(clients.h2c));
    // The floor any RPC pays: a unary List round trip on the same HTTP/1.1 connection.
    await measure('list', async () => {
      const t0 = process.hrtime.bigint();
      await clients.http1.list({});
      return Number(process.hrtime.bigint() - t0) / 1e6;
    });
  }
} finally {
  await server.stop();
}
const direct = stats(samples.direct);
const http1 = stats(samples.http1);
const h2c = stats(samples.h2c);
const list = stats(samples.list);
const round = (x) => Math.round(x * 1000) / 1000;
console.log(
  JSON.stringify(
    {
      bench: 'envd-exec',
      command: TRUE,
      iterations,
      encoding: binary ? 'binary' : 'json',
      envd_process: separateProcess ? 'separate' : 'same as the client',
      ...(separateProcess ? { node_flags: nodeFlags } : {}),
      envd_p50_ms: http1.p50,
      direct_p50_ms: direct.p50,
      overhead_p50_ms: round(http1.p50 - direct.p50),
      envd_h2c_p50_ms: h2c.p50,
      overhead_h2c_p50_ms: round(h2c.p50 - direct.p50),
      unary_rpc_p50_ms: list.p50,
      cpu_ms_per_exec: {
        unary_rpc: round(cpu.list / 1000 / iterations),
        direct: round(cpu.direct / 1000 / iterations),
        envd_http1: round(cpu.http1 / 1000 / iterations),
        envd_h2c: round(cpu.h2c / 1000 / iterations),
      },
      direct,
      envd_http1: http1,
      envd_h2c: h2c,
    },
    null,
    2,
  ),
);
process.exit(0);
