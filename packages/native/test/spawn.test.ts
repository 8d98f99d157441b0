// spawnProcess/createReaper with real processes: exit codes and signals, pipes, cwd, env, identity
// switch, exec errors, own session, clean signal state, no fd leaks, many children at once, and
// children of child_process left to libuv.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { native } from '../src/index.js';

type Exit = { code: number | null; signal: number | null };
const waiting = new Map<number, (e: Exit) => void>();
const reapers = new Map<boolean, object>();

/** The pidfd reaper, or with `threads` the fallback that waits in a thread per child. */
function reaperHandle(threads = false): object {
  let reaper = reapers.get(threads);
  if (!reaper) {
    reaper = native().createReaper(
      (pid, code, signal) => {
        const done = waiting.get(pid);
        waiting.delete(pid);
        done?.({ code, signal });
      },
      { threads },
    );
    reapers.set(threads, reaper);
  }
  return reaper;
}

interface Run {
  pid: number;
  stdin: Socket | null;
  /** Resolves once the process was reaped and both outputs hit EOF. */
  result: Promise<Exit & { stdout: string; stderr: string }>;
}

function collect(fd: number): Promise<string> {
  const s = new Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks).toString());
}

type Opts = {
  cwd?: string;
  env?: string[];
  stdin?: boolean;
  uid?: number;
  gid?: number;
  groups?: number[];
  threads?: boolean;
};

function run(file: string, args: string[], opts: Opts = {}): Run {
  const r = native().spawnProcess(reaperHandle(opts.threads), {
    file,
    argv: [file, ...args],
    env: opts.env ?? ['PATH=/usr/bin:/bin'],
    cwd: opts.cwd ?? '/',
    stdin: opts.stdin ?? false,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid, groups: opts.groups } : {}),
  });
  if ('errno' in r) throw new Error(`spawn failed: errno ${r.errno} at ${r.stage}`);
  const exit = new Promise<Exit>((resolve) => waiting.set(r.pid, resolve));
  const stdin = r.stdin >= 0 ? new Socket({ fd: r.stdin, readable: false, writable: true }) : null;
  const result = Promise.all([exit, collect(r.stdout), collect(r.stderr)]).then(([e, stdout, stderr]) => ({
    ...e,
    stdout,
    stderr,
  }));
  return { pid: r.pid, stdin, result };
}

test('exit codes, stdout and stderr', async () => {
  const r = await run('/bin/sh', ['-c', 'echo out; echo err >&2; exit 7']).result;
  assert.deepEqual(r, { code: 7, signal: null, stdout: 'out\n', stderr: 'err\n' });
  assert.equal((await run('/bin/true', []).result).code, 0);
});

test('a signal that ends the process is reported, with no exit code', async () => {
  const sleeper = run('/bin/sleep', ['30']);
  process.kill(sleeper.pid, 'SIGTERM');
  assert.deepEqual(await sleeper.result, { code: null, signal: 15, stdout: '', stderr: '' });
  const r = await run('/bin/sh', ['-c', 'kill -KILL $$']).result;
  assert.equal(r.code, null);
  assert.equal(r.signal, 9);
});

test('stdin: a pipe when asked (EOF on end), else /dev/null', async () => {
  const cat = run('/bin/cat', [], { stdin: true });
  cat.stdin?.end('hello through stdin\n');
  assert.equal((await cat.result).stdout, 'hello through stdin\n');
  const r = await run('/bin/sh', ['-c', 'cat; readlink /proc/self/fd/0']).result;
  assert.equal(r.stdout, '/dev/null\n');
});

test('cwd and exactly the given environment; a bare name is searched in that PATH', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-spawn-'));
  try {
    const r = await run('sh', ['-c', 'pwd; env | sort'], {
      cwd: dir,
      env: ['PATH=/usr/bin:/bin', 'A=1', 'B=two words'],
    }).result;
    assert.equal(r.stdout, `${dir}\nA=1\nB=two words\nPATH=/usr/bin:/bin\nPWD=${dir}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('uid, gid and exactly the given supplementary groups (nobody, with groups 100 and 27)', async () => {
  const r = await run('/bin/sh', ['-c', 'id -u; id -g; grep -E "^Groups:" /proc/self/status'], {
    uid: 65534,
    gid: 65534,
    groups: [65534, 100, 27],
  }).result;
  assert.equal(r.code, 0, r.stderr);
  const [uid, gid, groups] = r.stdout.trim().split('\n');
  assert.equal(uid, '65534');
  assert.equal(gid, '65534');
  assert.deepEqual(
    groups
      ?.replace('Groups:', '')
      .trim()
      .split(/\s+/)
      .map(Number)
      .sort((a, b) => a - b),
    [27, 100, 65534],
  );
  // No groups given: the root's groups are dropped, not inherited.
  const bare = await run('/bin/sh', ['-c', 'grep -E "^Groups:" /proc/self/status'], { uid: 65534, gid: 65534 }).result;
  assert.equal(bare.stdout.replace('Groups:', '').trim(), '');
});

test('exec failures come back as errno and stage; nothing is left running', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-spawn-'));
  try {
    const plain = join(dir, 'not-executable');
    writeFileSync(plain, 'echo hi\n');
    chmodSync(plain, 0o644);
    const spawnRaw = (file: string, cwd = '/', env = ['PATH=/usr/bin:/bin']) =>
      native().spawnProcess(reaperHandle(), { file, argv: [file], env, cwd, stdin: false });
    assert.deepEqual(spawnRaw('/nonexistent/program'), { errno: 2, stage: 'exec' });
    assert.deepEqual(spawnRaw('no-such-program-anywhere'), { errno: 2, stage: 'exec' });
    assert.deepEqual(spawnRaw(plain), { errno: 13, stage: 'exec' });
    assert.deepEqual(spawnRaw('/bin/true', join(dir, 'missing')), { errno: 2, stage: 'chdir' });
    assert.deepEqual(spawnRaw('/bin/true', plain), { errno: 20, stage: 'chdir' });
    // Failed children were reaped at once: no zombies of ours.
    const zombies = spawnSync('ps', ['-o', 'stat=', '--ppid', String(process.pid)], { encoding: 'utf8' }).stdout;
    assert.ok(!zombies.includes('Z'), zombies);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(
    () => native().spawnProcess(reaperHandle(), { file: '', argv: ['x'], env: [], cwd: '/', stdin: false }),
    /file is empty/,
  );
});

test('the child leads its own session and process group', async () => {
  const cat = run('/bin/cat', ['/proc/self/stat']);
  const r = await cat.result;
  // pid (comm) state ppid pgrp session ...
  const [, ppid, pgrp, session] = r.stdout.slice(r.stdout.lastIndexOf(')') + 2).split(' ');
  assert.equal(Number(pgrp), cat.pid, 'process group');
  assert.equal(Number(session), cat.pid, 'session');
  assert.equal(Number(ppid), process.pid, 'parent');
});

test('signal dispositions and mask start clean (Node ignores SIGPIPE, the child must not)', async () => {
  const r = await run('/bin/grep', ['-E', '^Sig(Blk|Ign):', '/proc/self/status']).result;
  assert.equal(r.stdout, 'SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
});

test('no fd of the parent reaches the child: only stdio', async () => {
  // The parent holds more: files, and the pipes of a child still running.
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-spawn-'));
  const held = [0, 1, 2].map((i) => openSync(join(dir, `f${i}`), 'w'));
  const other = run('/bin/sleep', ['30'], { stdin: true });
  try {
    const ls = run('/bin/ls', ['-l', '/proc/self/fd']);
    const { stdout } = await ls.result;
    const fds = [...stdout.matchAll(/ (\d+) -> (.*)$/gm)].map((m) => ({ fd: Number(m[1]), target: m[2] ?? '' }));
    assert.deepEqual(
      fds.slice(0, 3).map((f) => f.fd),
      [0, 1, 2],
      stdout,
    );
    // Beyond stdio only ls's own handle on the directory it lists.
    assert.deepEqual(
      fds.slice(3).map((f) => f.target),
      [`/proc/${ls.pid}/fd`],
      stdout,
    );
  } finally {
    process.kill(other.pid, 'SIGKILL');
    other.stdin?.destroy();
    await other.result;
    for (const fd of held) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const threads of [false, true]) {
  test(`many children at once, each with its own output and exit code (${threads ? 'waitpid threads' : 'pidfds'})`, async () => {
    const runs = Array.from({ length: 64 }, (_, i) => ({
      i,
      run: run('/bin/sh', ['-c', `echo child ${i}; exit ${i}`], { threads }),
    }));
    for (const { i, run: r } of runs) {
      const res = await r.result;
      assert.equal(res.code, i);
      assert.equal(res.stdout, `child ${i}\n`);
    }
    const killed = run('/bin/sleep', ['30'], { threads });
    process.kill(killed.pid, 'SIGKILL');
    assert.equal((await killed.result).signal, 9);
  });
}

test('children of child_process are left to libuv (their exit codes are not taken)', async () => {
  const ours = Array.from({ length: 8 }, (_, i) =>
    run('/bin/sh', ['-c', 'sleep 0.05; exit 3'], { threads: i % 2 === 1 }),
  );
  const theirs = Array.from({ length: 8 }, () => spawn('/bin/sh', ['-c', 'sleep 0.05; exit 5']));
  const theirCodes = await Promise.all(theirs.map((c) => once(c, 'exit').then(([code]) => code)));
  assert.deepEqual(theirCodes, Array(8).fill(5));
  assert.deepEqual(
    (await Promise.all(ours.map((r) => r.result))).map((r) => r.code),
    Array(8).fill(3),
  );
});
