// The bundle capsules run (packages/envd/dist/bundle, written by scripts/bundle-envd.mjs): started
// as the namespace runtime starts it, it must accept its build-time V8 code cache and still serve
// everything that the bundle loads lazily (h2c, node-pty, @wrenn/native's file calls).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
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

async function startBundle(
  entry: string,
  nodeArgs: string[] = [],
  extraEnv: Record<string, string> = {},
): Promise<Started> {
  const file = join(BUNDLE, entry);
  assert.ok(existsSync(file), `${file} is missing: run \`npm run build\` (scripts/bundle-envd.mjs)`);
  // The environment a capsule gives envd: nothing of this host's NODE_OPTIONS and the like.
  const child = spawn(process.execPath, [...ENVD_NODE_FLAGS, ...nodeArgs, file, '--port', '0', '--host', '127.0.0.1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', ...extraEnv },
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

test("envd listens on a socket the addon bound, not through node's host resolution (Node 22+ runs its IPv6 regular expression there)", async (t) => {
  // A preload that reports how envd's servers called listen(); the variant without the addon's
  // socket shows that the check tells the two ways apart.
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-envd-listen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const preload = join(dir, 'listen-report.cjs');
  writeFileSync(
    preload,
    [
      "const net = require('node:net');",
      'const listen = net.Server.prototype.listen;',
      'net.Server.prototype.listen = function (...a) {',
      "  const o = a[0] && typeof a[0] === 'object' ? a[0] : { port: a[0], host: typeof a[1] === 'string' ? a[1] : undefined };",
      "  process.stderr.write('LISTEN ' + JSON.stringify({ fd: typeof o.fd === 'number', host: o.host ?? null }) + '\\n');",
      '  return listen.apply(this, a);',
      '};',
      '',
    ].join('\n'),
  );
  for (const [bound, viaFd] of [
    ['1', true],
    ['0', false],
  ] as const) {
    const s = await startBundle(ENVD_START, ['--require', preload], { WRENN_BOUND_SOCKET: bound });
    t.after(() => stop(s));
    assert.equal((await fetch(`${s.baseUrl}/health`)).status, 204);
    const calls = [...s.stderr().matchAll(/LISTEN (.*)/g)].map((m) => JSON.parse(m[1] as string) as { fd: boolean });
    assert.ok(calls.length > 0, `no listen() call seen:\n${s.stderr()}`);
    assert.equal(calls[0]?.fd, viaFd, `WRENN_BOUND_SOCKET=${bound}: ${JSON.stringify(calls)}`);
  }
});

test('with a ready pipe (as in capsules) start.cjs says ready once its port listens, before the bundle loads, and serves a request sent then', async (t) => {
  // A preload that notes, when "ready" goes to fd 3, whether node's http module was loaded yet (the
  // bundle needs it; node's own start does not load it). WRENN_ENVD_EARLY_READY=0 is the control.
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-envd-early-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const preload = join(dir, 'ready-report.cjs');
  writeFileSync(
    preload,
    [
      "const fs = require('node:fs');",
      'const writeSync = fs.writeSync;',
      'fs.writeSync = function (fd, data, ...rest) {',
      "  if (fd === 3 && String(data).startsWith('ready')) {",
      "    const http = process.moduleLoadList.includes('NativeModule http');",
      "    process.stderr.write('READY-AT ' + JSON.stringify({ http }) + '\\n');",
      '  }',
      '  return writeSync.call(this, fd, data, ...rest);',
      '};',
      '',
    ].join('\n'),
  );
  for (const [early, httpAtReady] of [
    ['1', false],
    ['0', true],
  ] as const) {
    // A free port: the early socket needs one given on the command line, as the runtimes give it.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen({ port: 0, host: '127.0.0.1' }, resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const child = spawn(
      process.execPath,
      [
        ...ENVD_NODE_FLAGS,
        '--require',
        preload,
        join(BUNDLE, ENVD_START),
        '--port',
        String(port),
        '--host',
        '127.0.0.1',
      ],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: '/root',
          LANG: 'C.UTF-8',
          WRENN_READY_FD: '3',
          WRENN_ENVD_EARLY_READY: early,
        },
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      },
    );
    const s: Started = { child, baseUrl: `http://127.0.0.1:${port}`, stderr: () => stderr };
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    t.after(() => stop(s));
    const said = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`envd said nothing on fd 3 within 20 s:\n${stderr}`)), 20_000);
      (child.stdio[3] as NodeJS.ReadableStream).once('data', (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
      child.once('exit', (code) => reject(new Error(`envd exited with ${code}:\n${stderr}`)));
    });
    assert.equal(said, 'ready\n');
    // Sent right away: answered once envd serves (the connection waits in the listen backlog).
    assert.equal((await fetch(`${s.baseUrl}/health`)).status, 204, stderr);
    const at = /READY-AT (.*)/.exec(stderr)?.[1];
    assert.ok(at, `the preload did not report:\n${stderr}`);
    assert.equal((JSON.parse(at) as { http: boolean }).http, httpAtReady, `WRENN_ENVD_EARLY_READY=${early}`);
    // One listener on that port, envd's: the early socket is the one it serves on.
    const inode = listenerInode(port);
    const own = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.ok(own.includes(`socket:[${inode}]`), `envd does not hold socket:[${inode}]`);
    assert.doesNotMatch(stderr, /code cache rejected|Error/);
    await stop(s);
  }
});

/** The inode of the socket listening on 127.0.0.1:port (/proc/net/tcp, state 0A). */
function listenerInode(port: number): string {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === `0100007F:${hexPort}` && f[3] === '0A' && f[9]) return f[9];
  }
  throw new Error(`no listener on 127.0.0.1:${port} in /proc/net/tcp`);
}

test('no process envd starts holds its listening socket (pipe, PTY, child_process)', async (t) => {
  // The addon's socket is close-on-exec; an inherited one would not be, and a command could then
  // accept envd's own connections.
  for (const nativeSpawn of ['1', '0']) {
    const s = await startBundle(ENVD_START, [], { WRENN_ENVD_NATIVE_SPAWN: nativeSpawn });
    t.after(() => stop(s));
    const inode = listenerInode(Number(new URL(s.baseUrl).port));
    // The control: envd itself holds that socket, so its absence below means something.
    const own = readdirSync(`/proc/${s.child.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${s.child.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.ok(own.includes(`socket:[${inode}]`), `envd does not hold socket:[${inode}]: ${own.join(' ')}`);
    const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion: '1.1' });
    const listFds = 'for f in /proc/$$/fd/*; do readlink "$f"; done; echo END';
    for (const pty of [false, true]) {
      let out = '';
      for await (const res of createClient(Process, transport).start({
        process: { cmd: '/bin/sh', args: ['-c', listFds] },
        ...(pty ? { pty: { size: { cols: 200, rows: 24 } } } : {}),
      })) {
        const o = res.event?.event.case === 'data' ? res.event.event.value.output : undefined;
        if (o?.case === 'stdout' || o?.case === 'pty') out += Buffer.from(o.value).toString();
      }
      assert.match(out, /END/, `the command ran (native spawn ${nativeSpawn}, pty ${pty}):\n${out}`);
      assert.doesNotMatch(out, new RegExp(`socket:\\[${inode}\\]`), `native spawn ${nativeSpawn}, pty ${pty}`);
    }
  }
});
