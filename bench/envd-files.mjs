#!/usr/bin/env node
// /files throughput on loopback: POST (application/octet-stream) and GET of one file (100 MB by
// default) through envd running in its own Node process (as in a capsule), against a plain local
// copy of the same file in the same run (fs.copyFile and a stream copy). Median of --runs each.
// Prints JSON. Needs the build: `npx tsc -b packages/envd`.
// envd runs with the capsule's node flags (ENVD_NODE_FLAGS) unless --node-flags "..." says otherwise.
// --user NAME sends every request as that user (envd then opens and creates files with its identity,
// the non-root path); the work dir is handed to that user.
// Usage: node bench/envd-files.mjs [--mb 100] [--runs 3] [--node-flags "..."] [--user NAME]
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  createReadStream,
  createWriteStream,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { copyFile, unlink } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MB = opt('mb', 100);
const runs = opt('runs', 3);
const bytes = MB * 1024 * 1024;
const HWM = 1 << 20;
const userAt = args.indexOf('--user');
const user = userAt >= 0 ? args[userAt + 1] : undefined;
const asUser = user ? `&username=${encodeURIComponent(user)}` : '';

const serverUrl = new URL('../packages/envd/dist/src/server.js', import.meta.url);
const { ENVD_NODE_FLAGS } = await import('../packages/envd/dist/src/bundle-layout.js');
const flagsAt = args.indexOf('--node-flags');
const nodeFlags = flagsAt >= 0 ? args[flagsAt + 1].split(/\s+/).filter(Boolean) : [...ENVD_NODE_FLAGS];
const serverScript = `
  const { startEnvd } = await import(${JSON.stringify(fileURLToPath(serverUrl))});
  const s = await startEnvd({ port: 0, host: '127.0.0.1', portForwarding: false });
  process.stdout.write(String(s.port) + '\\n');
  // Each line on stdin asks for envd's CPU time so far (user+system, all threads), in ms.
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (l) => { if (String(l).startsWith('rss')) { process.stdout.write(String(process.resourceUsage().maxRSS / 1024) + '\\n'); return; } const u = process.cpuUsage(); process.stdout.write(String((u.user + u.system) / 1000) + '\\n'); });
  process.stdin.on('end', () => s.close().then(() => process.exit(0)));
`;

async function startServer() {
  const child = spawn(process.execPath, [...nodeFlags, '--input-type=module', '-e', serverScript], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value).trim();
  const port = Number(await next());
  return {
    child,
    port,
    async cpuMs() {
      child.stdin.write('cpu\n');
      return Number(await next());
    },
    async maxRssMB() {
      child.stdin.write('rss\n');
      return Math.round(Number(await next()));
    },
  };
}

const agent = new http.Agent({ keepAlive: true });

function post(port, src, dest) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        agent,
        method: 'POST',
        path: `/files?path=${encodeURIComponent(dest)}${asUser}`,
        headers: { 'content-type': 'application/octet-stream', 'content-length': bytes },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`POST ${res.statusCode}: ${body}`)),
        );
      },
    );
    req.on('error', reject);
    pipeline(createReadStream(src, { highWaterMark: HWM }), req).catch(reject);
  });
}

/** multipart/form-data with one file part, streamed (what the SDK sends for non-stream data). */
function postMultipart(port, src, dest) {
  const boundary = `----wrennbench${Date.now()}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${dest}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        agent,
        method: 'POST',
        path: user ? `/files?username=${encodeURIComponent(user)}` : '/files',
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': head.length + bytes + tail.length,
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`POST ${res.statusCode}: ${body}`)),
        );
      },
    );
    req.on('error', reject);
    req.write(head);
    createReadStream(src, { highWaterMark: HWM })
      .on('end', () => req.end(tail))
      .on('error', reject)
      .pipe(req, { end: false });
  });
}

function get(port, path, sink, encoding = 'identity') {
  return new Promise((resolve, reject) => {
    http
      .get(
        {
          host: '127.0.0.1',
          port,
          agent,
          path: `/files?path=${encodeURIComponent(path)}${asUser}`,
          headers: { 'accept-encoding': encoding },
        },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`GET ${res.statusCode}`));
          if (sink) return pipeline(res, createWriteStream(sink, { highWaterMark: HWM })).then(resolve, reject);
          let n = 0;
          res.on('data', (c) => (n += c.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        },
      )
      .on('error', reject);
  });
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median wall-clock MB/s over the runs; with `server`, also envd's CPU ms per run (median). */
async function medianMBps(fn, cleanup, server) {
  const rates = [];
  const cpu = [];
  for (let i = 0; i < runs; i++) {
    const c0 = server ? await server.cpuMs() : 0;
    const s = await timed(fn);
    if (server) cpu.push((await server.cpuMs()) - c0);
    rates.push(MB / s);
    if (cleanup) await cleanup();
  }
  const mbps = Math.round(median(rates));
  return server ? { mbps, envdCpuMs: Math.round(median(cpu)) } : mbps;
}

const dir = mkdtempSync(join(tmpdir(), 'wrenn-bench-files-'));
if (user) {
  chmodSync(dir, 0o755);
  chownSync(dir, Number(execFileSync('id', ['-u', user])), Number(execFileSync('id', ['-g', user])));
}
const server = await startServer();
try {
  const src = join(dir, 'source.bin');
  // Incompressible content, written in 8 MiB blocks.
  const block = randomBytes(8 << 20);
  writeFileSync(src, Buffer.alloc(0));
  {
    const ws = createWriteStream(src);
    for (let left = bytes; left > 0; left -= block.length)
      ws.write(left >= block.length ? block : block.subarray(0, left));
    ws.end();
    await new Promise((r) => ws.on('finish', r));
  }
  const dest = join(dir, 'dest.bin');
  const rm = () => unlink(dest).catch(() => undefined);

  const envdStartRssMB = await server.maxRssMB();
  const copyFileMBps = await medianMBps(() => copyFile(src, dest), rm);
  const streamCopyMBps = await medianMBps(
    () => pipeline(createReadStream(src, { highWaterMark: HWM }), createWriteStream(dest, { highWaterMark: HWM })),
    rm,
  );
  const postR = await medianMBps(() => post(server.port, src, dest), rm, server);
  await post(server.port, src, dest);
  if (statSync(dest).size !== bytes) throw new Error('upload size mismatch');
  await rm();
  const postMultipartR = await medianMBps(() => postMultipart(server.port, src, dest), rm, server);
  const getR = await medianMBps(
    async () => {
      const n = await get(server.port, src);
      if (n !== bytes) throw new Error(`GET returned ${n} bytes`);
    },
    undefined,
    server,
  );
  const getToFileR = await medianMBps(() => get(server.port, src, dest), rm, server);
  // What fetch (and so the e2b SDK) offers by default; incompressible data is served as identity.
  const getFetchDefaultR = await medianMBps(() => get(server.port, src, null, 'gzip, deflate'), undefined, server);
  const [load1] = (await import('node:os')).loadavg();
  const envdMaxRssMB = await server.maxRssMB();

  const r2 = (x) => Math.round(x * 100) / 100;
  const cpuBound = (r) => Math.round(MB / (r.envdCpuMs / 1000));
  console.log(
    JSON.stringify(
      {
        bench: 'envd-files',
        user: user ?? 'root',
        node_flags: nodeFlags,
        fileMB: MB,
        runs,
        loadAverage1m: r2(load1),
        localCopy: { copyFileMBps, streamCopyMBps },
        envd: {
          postOctetStream: postR,
          postMultipart: postMultipartR,
          get: getR,
          getToFile: getToFileR,
          getFetchDefaultAcceptEncoding: getFetchDefaultR,
        },
        ratioToStreamCopy: {
          post: r2(postR.mbps / streamCopyMBps),
          get: r2(getR.mbps / streamCopyMBps),
          getToFile: r2(getToFileR.mbps / streamCopyMBps),
        },
        ratioToCopyFile: { post: r2(postR.mbps / copyFileMBps), get: r2(getR.mbps / copyFileMBps) },
        // MB per envd CPU second: the rate envd could sustain given one free core.
        envdCpuBoundMBps: { post: cpuBound(postR), postMultipart: cpuBound(postMultipartR), get: cpuBound(getR) },
        // Peak resident memory of the envd process over all transfers: bodies are streamed, not buffered.
        envdStartRssMB,
        envdMaxRssMB,
      },
      null,
      2,
    ),
  );
} finally {
  agent.destroy();
  server.child.stdin.end();
  await new Promise((r) => server.child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
