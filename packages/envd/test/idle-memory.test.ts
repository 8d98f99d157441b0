// envd's idle memory release (src/idle-memory.ts): which mappings it may drop, and that an envd
// that released them keeps working (commands, PTY, files) with a smaller RSS.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { ENVD_NODE_FLAGS, ENVD_START } from '../src/bundle-layout.js';
import { cleanReadOnlyMappings } from '../src/idle-memory.js';

const SMAPS = `00400000-00b6f000 r--p 00000000 08:01 123 /usr/bin/node
Size:               7612 kB
Rss:                5800 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
00b72000-025fe000 r-xp 00772000 08:01 123 /usr/bin/node
Rss:               16000 kB
Anonymous:             0 kB
02601000-0563a000 r--p 02201000 08:01 123 /usr/bin/node
Rss:               10600 kB
Anonymous:             0 kB
0563a000-0563c000 r--p 05239000 08:01 123 /usr/bin/node
Rss:                   8 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
0563c000-0565c000 rw-p 0523b000 08:01 123 /usr/bin/node
Anonymous:           100 kB
7f0000000000-7f0000100000 r--p 00000000 08:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Anonymous:          1024 kB
`;

test('only clean, read-only, non-executable mappings of the named file are chosen', () => {
  assert.deepEqual(cleanReadOnlyMappings(SMAPS, '/usr/bin/node'), [
    { start: 0x400000, length: 0xb6f000 - 0x400000 },
    { start: 0x2601000, length: 0x563a000 - 0x2601000 },
  ]);
  assert.deepEqual(cleanReadOnlyMappings(SMAPS, '/nonexistent'), []);
});

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

test('an envd that released its idle memory still serves commands, PTY and files', async (t) => {
  const file = fileURLToPath(new URL(`../bundle/${ENVD_START}`, import.meta.url));
  const child = spawn(process.execPath, [...ENVD_NODE_FLAGS, file, '--port', '0', '--host', '127.0.0.1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  const released = new Promise<number>((resolve) => {
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"msg":"idle: released clean read-only mappings","mb":([\d.]+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`envd did not listen:\n${stderr}`)), 20_000);
    child.stderr?.on('data', () => {
      const m = /"msg":"envd listening","port":(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  const before = rssKb(child.pid as number);
  const mb = await Promise.race([
    released,
    new Promise<number>((_, reject) =>
      setTimeout(() => reject(new Error(`no release within 10 s:\n${stderr}`)), 10_000),
    ),
  ]);
  assert.ok(mb > 1, `released ${mb} MB`);
  const after = rssKb(child.pid as number);
  assert.ok(after < before, `RSS ${before} kB before, ${after} kB after the release`);

  const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1' });
  const proc = createClient(Process, transport);
  let out = '';
  for await (const res of proc.start({ process: { cmd: '/bin/sh', args: ['-c', 'echo after release'] } })) {
    if (res.event?.event.case === 'data' && res.event.event.value.output.case === 'stdout')
      out += Buffer.from(res.event.event.value.output.value).toString();
  }
  assert.equal(out, 'after release\n');
  let pty = '';
  for await (const res of proc.start({
    process: { cmd: '/bin/sh', args: ['-c', 'tty >/dev/null && echo tty ok'] },
    pty: { size: { cols: 80, rows: 24 } },
  })) {
    if (res.event?.event.case === 'data' && res.event.event.value.output.case === 'pty')
      pty += Buffer.from(res.event.event.value.output.value).toString();
  }
  assert.match(pty, /tty ok/);
  const list = await createClient(Filesystem, transport).listDir({ path: '/', depth: 1 });
  assert.ok(list.entries.length > 0);
  // h2c loads node:http2, whose code cache and sources were among the released pages.
  const h2 = createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '2' });
  const stat = await createClient(Filesystem, h2).stat({ path: '/' });
  assert.equal(stat.entry?.path, '/');
});

test('a release that hits EMFILE is logged and retried; envd-like process keeps running', async () => {
  // A child process with its file table full (every fd up to RLIMIT_NOFILE taken), then freed.
  const mod = fileURLToPath(new URL('../src/idle-memory.js', import.meta.url));
  const script = `
    import { openSync, closeSync } from 'node:fs';
    import { createRequire } from 'node:module';
    const { startIdleMemoryRelease } = await import(${JSON.stringify(mod)});
    const binding = createRequire(${JSON.stringify(mod)})('@wrenn/native/addon');
    const held = [];
    for (;;) { try { held.push(openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; break; } }
    startIdleMemoryRelease({ checkMs: 100, minWorkMs: 1, binding });
    const burn = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
    burn(30);
    setTimeout(() => { for (const fd of held) closeSync(fd); burn(30); }, 700);
    setTimeout(() => { process.stdout.write('alive\\n'); process.exit(0); }, 1500);
  `;
  const child = spawn(
    '/bin/sh',
    ['-c', 'ulimit -n 64 && exec "$0" --input-type=module -e "$1"', process.execPath, script],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, `the process died: ${err}`);
  assert.equal(out, 'alive\n');
  const lines = err
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; code?: string });
  assert.ok(
    lines.some((l) => /release failed/.test(l.msg) && (l.code === 'EMFILE' || l.code === 'ENFILE')),
    `no EMFILE logged: ${err}`,
  );
  assert.ok(
    lines.some((l) => /released clean read-only mappings/.test(l.msg)),
    `no release after the fds were freed: ${err}`,
  );
});
