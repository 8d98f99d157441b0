// spawnNative's fd mapping and sessions, with real processes: a status pipe at fd 3, one log file
// shared by stdout and stderr, 'ignore', sources whose numbers are also targets, nothing else
// inherited, setsid only when detached, and unref'd children that neither keep us alive nor die with us.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeSpawnAvailable, type SpawnedChild, spawnNative } from '../src/index.js';

function readAll(s: Socket | null | undefined): Promise<string> {
  assert.ok(s, 'expected a pipe');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks).toString());
}

function exited(child: SpawnedChild): Promise<[number | null, NodeJS.Signals | null]> {
  return once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-spawn-stdio-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the addon is in use (these tests would otherwise test child_process)', () => {
  assert.equal(nativeSpawnAvailable(), true);
});

test('fd 3 a status pipe, 1 and 2 one log file, stdin ignored', async (t) => {
  const dir = tempDir(t);
  const logPath = join(dir, 'log');
  const log = openSync(logPath, 'a');
  t.after(() => closeSync(log));
  const child = spawnNative('/bin/sh', ['-c', 'echo out; echo err >&2; echo pid $$ >&3; cat; echo ready >&3'], {
    stdio: ['ignore', log, log, 'pipe'],
  });
  assert.equal(child.stdin, null);
  assert.equal(child.stdout, null);
  assert.equal(child.stderr, null);
  const [status, [code]] = await Promise.all([readAll(child.stdio[3]), exited(child)]);
  assert.equal(status, `pid ${child.pid}\nready\n`); // cat read EOF from /dev/null at once
  assert.equal(code, 0);
  assert.equal(readFileSync(logPath, 'utf8'), 'out\nerr\n');
});

test('a source fd whose number is also a target is not clobbered', async (t) => {
  const dir = tempDir(t);
  const logPath = join(dir, 'log');
  const log = openSync(logPath, 'w');
  t.after(() => closeSync(log));
  // The child's fd `log` is a pipe; its last fd is our fd `log` (the file).
  const n = log + 2;
  const stdio: ('pipe' | 'ignore' | number)[] = Array.from({ length: n }, () => 'ignore');
  stdio[log] = 'pipe';
  stdio[n - 1] = log;
  // bash: dash redirects only fds 0-9.
  const child = spawnNative('/bin/bash', ['-c', `echo to-pipe >&${log}; echo to-file >&${n - 1}`], { stdio });
  const [piped, [code]] = await Promise.all([readAll(child.stdio[log]), exited(child)]);
  assert.equal(code, 0);
  assert.equal(piped, 'to-pipe\n');
  assert.equal(readFileSync(logPath, 'utf8'), 'to-file\n');
});

test('the child has exactly the fds it was given', async () => {
  const child = spawnNative('/bin/ls', ['/proc/self/fd'], { stdio: ['ignore', 'pipe', 'ignore', 'ignore', 'ignore'] });
  const out = await readAll(child.stdout);
  // 0-4, plus ls's own handle on the directory it lists.
  assert.deepEqual(
    out
      .trim()
      .split('\n')
      .map(Number)
      .sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5],
  );
});

test("'ignore' is /dev/null, fds 0-2 missing from a short stdio too, 'inherit' our own fd", async () => {
  const child = spawnNative('/bin/sh', ['-c', 'readlink /proc/self/fd/0 /proc/self/fd/2 >&3'], {
    stdio: ['ignore', 'pipe', 'ignore', 'pipe'],
  });
  assert.equal(await readAll(child.stdio[3]), '/dev/null\n/dev/null\n');
  const short = spawnNative('/bin/readlink', ['/proc/self/fd/0', '/proc/self/fd/2'], { stdio: ['ignore', 'pipe'] });
  assert.equal(await readAll(short.stdout), '/dev/null\n/dev/null\n');
  const inherit = spawnNative('/bin/readlink', ['/proc/self/fd/2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  assert.equal(await readAll(inherit.stdout), `${readlinkSync('/proc/self/fd/2')}\n`);
});

test('a bad stdio entry or a closed fd is refused with a clear error', () => {
  assert.throws(() => spawnNative('/bin/true', [], { stdio: ['ignore', 'bogus' as never] }), /stdio\[1\] must be/);
  assert.throws(
    () => spawnNative('/bin/true', [], { stdio: ['ignore', 987654] }),
    /stdio\[1\] is fd 987654, which is not open/,
  );
});

test('own session only when detached', async () => {
  const ask = (detached: boolean) => {
    const child = spawnNative('/bin/sh', ['-c', 'ps -o sid=,pgid= -p $$'], { detached });
    return readAll(child.stdout).then((s) => s.trim().split(/\s+/).map(Number));
  };
  const [sid, pgid] = await ask(true);
  assert.ok(sid && sid === pgid && sid !== process.pid);
  const ours = execFileSync('ps', ['-o', 'sid=,pgid=', '-p', String(process.pid)], { encoding: 'utf8' })
    .trim()
    .split(/\s+/)
    .map(Number);
  assert.deepEqual(await ask(false), ours);
});

test("a start failure is an 'error' event like child_process's (ENOENT, pid undefined)", async () => {
  const child = spawnNative('/nonexistent/tool', []);
  assert.equal(child.pid, undefined);
  const [err] = (await once(child, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ENOENT');
  assert.equal(err.message, 'spawn /nonexistent/tool ENOENT');
});

// A Node process that starts a detached `sleep` with an fd-3 pipe, reads its pid, unrefs it and exits:
// the nsinit pattern. Must exit at once and leave the sleep running.
const script = `
import { spawnNative } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
const child = spawnNative('/bin/sh', ['-c', 'echo $$ >&3; exec sleep 30'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], detached: true });
child.stdio[3].once('data', (d) => { process.stdout.write(String(d)); child.stdio[3].destroy(); child.unref(); });
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const mode of ['native', 'child_process'] as const) {
  test(`an unref'd detached child neither keeps its parent alive nor dies with it (${mode})`, async (t) => {
    const env = { ...process.env, WRENN_NATIVE_SPAWN: mode === 'native' ? '1' : '0' };
    const dir = tempDir(t);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env,
      encoding: 'utf8',
      timeout: 20_000,
      cwd: dir,
    });
    const pid = Number(r.stdout.trim());
    t.after(() => {
      if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
    });
    assert.equal(r.error, undefined, `the parent did not exit by itself: ${r.error?.message}`);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(pid > 0, r.stdout);
    assert.ok(alive(pid), 'the detached child died with its parent');
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\0/);
  });
}

test('the thread-fallback reaper honours unref too', () => {
  const addon = fileURLToPath(new URL('../src/binding.js', import.meta.url));
  const code = `
import { native } from ${JSON.stringify(addon)};
const b = native();
const reaper = b.createReaper(() => {}, { threads: true });
const r = b.spawnProcess(reaper, { file: '/bin/sleep', argv: ['sleep', '30'], env: [], cwd: '/', stdio: ['ignore', 'ignore', 'ignore'] });
b.setReaperRef(reaper, r.pid, false);
process.stdout.write(String(r.pid));
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 20_000 });
  const pid = Number(r.stdout.trim());
  try {
    assert.equal(r.error, undefined, `the parent did not exit by itself: ${r.error?.message}`);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(alive(pid));
  } finally {
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
});
