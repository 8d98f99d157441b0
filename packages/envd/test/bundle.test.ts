// The bundle capsules run (packages/envd/dist/bundle, written by scripts/bundle-envd.mjs): started
// as the namespace runtime starts it, it must accept its build-time V8 code cache and still serve
// everything that the bundle loads lazily (h2c, node-pty, @wrenn/native's file calls).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { ENVD_NODE_FLAGS, ENVD_START } from '../src/bundle-layout.js';

const BUNDLE = fileURLToPath(new URL('../bundle/', import.meta.url));

interface Started {
  child: ChildProcess;
  baseUrl: string;
  stderr: () => string;
}

async function startBundle(entry: string, nodeArgs: string[] = []): Promise<Started> {
  const file = join(BUNDLE, entry);
  assert.ok(existsSync(file), `${file} is missing: run \`npm run build\` (scripts/bundle-envd.mjs)`);
  // The environment a capsule gives envd: nothing of this host's NODE_OPTIONS and the like.
  const child = spawn(process.execPath, [...ENVD_NODE_FLAGS, ...nodeArgs, file, '--port', '0', '--host', '127.0.0.1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`envd did not listen within 20 s:\n${stderr}`)), 20_000);
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"msg":"envd listening","port":(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`envd exited with ${code}:\n${stderr}`));
    });
  });
  return { child, baseUrl: `http://127.0.0.1:${port}`, stderr: () => stderr };
}

async function stop(s: Started): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = once(s.child, 'exit');
  s.child.kill('SIGKILL');
  await exited;
}

test('start.cjs runs envd with its code cache and serves h1, h2c, PTY and file info', async (t) => {
  const s = await startBundle(ENVD_START);
  t.after(() => stop(s));
  assert.equal((await fetch(`${s.baseUrl}/health`)).status, 204);
  for (const httpVersion of ['1.1', '2'] as const) {
    const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion, useBinaryFormat: httpVersion === '2' });
    let out = '';
    for await (const res of createClient(Process, transport).start({
      process: { cmd: '/bin/echo', args: [`over ${httpVersion}`] },
    })) {
      if (res.event?.event.case === 'data' && res.event.event.value.output.case === 'stdout') {
        out += Buffer.from(res.event.event.value.output.value).toString();
      }
    }
    assert.equal(out, `over ${httpVersion}\n`);
  }
  const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion: '1.1' });
  let pty = '';
  for await (const res of createClient(Process, transport).start({
    process: { cmd: '/bin/sh', args: ['-c', 'tty >/dev/null && echo on-a-tty'] },
    pty: { size: { cols: 80, rows: 24 } },
  })) {
    if (res.event?.event.case === 'data' && res.event.event.value.output.case === 'pty') {
      pty += Buffer.from(res.event.event.value.output.value).toString();
    }
  }
  assert.match(pty, /on-a-tty/);
  const entry = await createClient(Filesystem, transport).stat({ path: '/' });
  assert.equal(entry.entry?.path, '/');
  assert.doesNotMatch(
    s.stderr(),
    /code cache rejected/,
    'the code cache must be made with ENVD_NODE_FLAGS by this node',
  );
  assert.doesNotMatch(s.stderr(), /file metadata disabled|Error/);
  // The bundle requires the spawn addon by its path next to envd.cjs (scripts/bundle-envd.mjs).
  assert.doesNotMatch(s.stderr(), /native spawn unavailable/);
});

test('envd.mjs (the ES module entry VM images run) starts the same envd', async (t) => {
  const s = await startBundle('envd.mjs');
  t.after(() => stop(s));
  assert.equal((await fetch(`${s.baseUrl}/health`)).status, 204);
  assert.doesNotMatch(s.stderr(), /code cache rejected/);
});

test("the bundle serves without loading node's undici (its global Headers would, on Node 22+ even to redefine it)", async (t) => {
  // A preload that reports, when envd is told to stop, which of node's own modules it loaded.
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-envd-undici-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const preload = join(dir, 'report.cjs');
  writeFileSync(
    preload,
    "process.once('SIGTERM', () => { process.stderr.write('LOADED ' + JSON.stringify(process.moduleLoadList) + '\\n'); process.exit(0); });\n",
  );
  const s = await startBundle(ENVD_START, ['--require', preload]);
  t.after(() => stop(s));
  // Connect's router path (Headers for every call) and the Start fast path, both formats.
  for (const useBinaryFormat of [true, false]) {
    const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion: '1.1', useBinaryFormat });
    for await (const _ of createClient(Process, transport).start({ process: { cmd: '/bin/true', args: [] } })) {
      // until the end event
    }
    assert.equal((await createClient(Filesystem, transport).stat({ path: '/' })).entry?.path, '/');
  }
  const exited = once(s.child, 'exit');
  s.child.kill('SIGTERM');
  await exited;
  const line = /LOADED (.*)/.exec(s.stderr())?.[1];
  assert.ok(line, `the preload did not report:\n${s.stderr()}`);
  const undici = (JSON.parse(line) as string[]).filter((m) => m.includes('undici'));
  assert.deepEqual(undici, [], `envd loaded node's undici (${process.version})`);
});
