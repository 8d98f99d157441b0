#!/usr/bin/env node
// Would a user-land startup snapshot start envd faster than start.cjs with its V8 code cache?
// (prints JSON). For each Node line (the machine's and .ci/node-lines, or the versions given): the
// envd bundle and code cache made by that node (as capsules run it), and beside it a snapshot blob
// that node builds (`node --snapshot-blob envd.blob --build-snapshot`) from an entry that evaluates
// all of envd's code and leaves to v8.startupSnapshot.setDeserializeMainFunction what needs the
// running process: its sockets, timers and the native addon. Node cannot put node:http into a user
// snapshot (its HTTPParser binding is not serializable: the build aborts), so the entry's bundle
// gets node:http through a proxy that loads it on first use, after the snapshot.
// Each round starts both variants of every line in turn: wall time to envd's "ready" on fd 3, the
// CPU of all its threads until then, a first command (`echo ok`, checked) and, after --idle-ms of
// idleness, RSS and anonymous memory (smaps_rollup). p50 / min per figure.
// Usage (after `npm run build`): node bench/envd-snapshot.mjs [--rounds 15] [--idle-ms 3000] [versions...]
// Not what envd runs: the snapshot entry would also have to read at run time what envd's modules read
// at load (process.getuid() in process/launcher.ts, PATH in process/launch-spec.ts would otherwise
// be the build machine's) and find the addon from the blob's run-time place.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { build } from 'esbuild';
import { predecodedDescriptors } from '../scripts/lib/predecoded-descriptors.mjs';
import { benchNodeLines, bundleWith, startEnvdOnHost, stopEnvd } from './lib/envd-host-start.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const rounds = Number(opt('rounds', '15'));
const idleMs = Number(opt('idle-ms', '3000'));
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 200) throw new Error('--rounds must be 1..200');
if (!Number.isInteger(idleMs) || idleMs < 0 || idleMs > 60_000) throw new Error('--idle-ms must be 0..60000');
const lines = benchNodeLines(argv.filter((a) => /^\d+\.\d+\.\d+$/.test(a)));

/** The snapshot's entry: all of envd evaluated at build time, only the start left for run time. */
const ENTRY = `const { runEnvdFromCli } = require(${JSON.stringify(join(root, 'packages/envd/dist/src/cli.js'))});
const { ENVD_PORT } = require(${JSON.stringify(join(root, 'packages/envd/dist/src/version.js'))});
const flag = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
};
require('node:v8').startupSnapshot.setDeserializeMainFunction(() => {
  runEnvdFromCli({ port: Number(flag('--port', String(ENVD_PORT))), host: flag('--host', '0.0.0.0') }).catch((err) => {
    process.stderr.write('envd: ' + err.message + '\\n');
    process.exit(1);
  });
});
`;
/** node:http for the snapshot's bundle: a proxy that requires it on first use (after deserializing). */
const lazyHttp = {
  name: 'lazy-http',
  setup(b) {
    b.onResolve({ filter: /^node:http$/ }, (a) =>
      a.namespace === 'lazy-http' ? { path: 'node:http', external: true } : { path: 'http', namespace: 'lazy-http' },
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-http' }, () => ({
      contents:
        "let m; const http = () => (m ??= require('node:http'));\n" +
        'export default new Proxy({}, { get: (_, k) => http()[k], has: (_, k) => k in http() });',
      loader: 'js',
    }));
  },
};

const work = mkdtempSync(join(tmpdir(), 'wrenn-bench-envd-snapshot-'));
try {
  writeFileSync(join(work, 'entry.cjs'), ENTRY);
  for (const line of lines) {
    const env = { ...process.env, PATH: `${dirname(line.node)}:${process.env.PATH}` };
    delete env.NODE_OPTIONS;
    line.dir = bundleWith(line.node, join(work, `bundle-${line.version}`));
    // Built into the bundle folder, so the addon's path next to it (node_modules/...) resolves.
    await build({
      entryPoints: [join(work, 'entry.cjs')],
      outfile: join(line.dir, 'snapshot-entry.cjs'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      minify: true,
      external: ['node-pty', '@wrenn/native/addon'],
      logLevel: 'warning',
      supported: { 'dynamic-import': false },
      define: { 'import.meta.url': '__filename', WRENN_ENVD_BUNDLE: 'true' },
      inject: [join(root, 'packages/envd/dist/src/lite-headers.js')],
      plugins: [
        lazyHttp,
        predecodedDescriptors({ helper: join(root, 'packages/envd/dist/src/proto/file-desc-decoded.js') }),
      ],
    });
    const blob = join(line.dir, 'envd.blob');
    execFileSync(line.node, ['--snapshot-blob', blob, '--build-snapshot', 'snapshot-entry.cjs'], {
      cwd: line.dir,
      env,
      stdio: ['ignore', 'ignore', 'pipe'], // node warns about modules "not yet fully verified" in snapshots
    });
    line.variants = [
      { name: 'start.cjs + code cache', args: [join(line.dir, 'start.cjs')], rows: [] },
      { name: 'startup snapshot', args: ['--snapshot-blob', blob, 'envd'], rows: [] },
    ];
  }
  const load = [loadavg()[0]];
  for (let r = 0; r <= rounds; r++)
    for (const line of lines)
      for (const v of line.variants) {
        const row = await oneStart(line, v);
        if (r > 0) v.rows.push(row); // the first round warms the page cache
      }
  load.push(loadavg()[0]);
  const result = {
    bench: 'envd-snapshot',
    rounds,
    idle_ms: idleMs,
    load_average: load.map((l) => Math.round(l * 100) / 100),
    lines: {},
  };
  for (const line of lines) {
    result.lines[line.version] = {};
    for (const v of line.variants) {
      const figures = {};
      for (const key of Object.keys(v.rows[0])) figures[key] = p50AndMin(v.rows.map((x) => x[key]));
      result.lines[line.version][v.name] = figures;
    }
  }
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}

function p50AndMin(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 10) / 10;
  return { p50: r(s[Math.floor(s.length / 2)]), min: r(s[0]) };
}

/** One envd start: ready (ms), CPU until ready (ms), first command (ms), idle RSS and anon (MB). */
async function oneStart(line, v) {
  const {
    child,
    port,
    readyMs: ready_ms,
    cpuMs: cpu_ms,
  } = await startEnvdOnHost(line.node, v.args, `${line.version}, ${v.name}`);
  try {
    const proc = createClient(
      Process,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1' }),
    );
    const t1 = performance.now();
    let out = '';
    for await (const ev of proc.start({ process: { cmd: '/bin/sh', args: ['-c', 'echo ok'] } }))
      if (ev.event?.event.case === 'data' && ev.event.event.value.output.case === 'stdout')
        out += new TextDecoder().decode(ev.event.event.value.output.value);
    const first_exec_ms = performance.now() - t1;
    if (out !== 'ok\n') throw new Error(`envd (${line.version}, ${v.name}): echo ok printed ${JSON.stringify(out)}`);
    await new Promise((r) => setTimeout(r, idleMs));
    const smaps = readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8');
    const mb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(smaps)[1]) / 1024;
    return { ready_ms, cpu_ms, first_exec_ms, idle_rss_mb: mb('Rss'), idle_anon_mb: mb('Anonymous') };
  } finally {
    await stopEnvd(child);
  }
}
