// Hostile probes: everything a capsule can write stays on its own disk, and its output cannot grow
// a host file. Root inside fills /etc/hosts (once a host file) until ENOSPC at its quota, writes
// megabytes into envd's stdout through /proc, deletes files (the sparse image must shrink), and a
// create that the host's free space cannot back is refused with a capacity error. A neighbour
// capsule keeps working throughout. Needs root; everything is removed even when a check fails.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Code } from '@connectrpc/connect';
import { HostCapacityError } from '../../src/runtimes/capacity-error.js';
import { execInCapsule, type NamespaceRuntime } from '../../src/runtimes/namespace/index.js';
import { ENVD_LOG_MAX_BYTES } from '../../src/runtimes/namespace/namespace-runtime.js';
import type { RuntimeHandle } from '../../src/runtimes/runtime.js';
import { toConnectError } from '../../src/service/errors.js';
import { makeEnv, rand, spec } from '../namespace-fixtures.js';
import { compileStatic, installInCapsule } from './static-probe.js';

const DISK_MB = 96;
const MiB = 1024 * 1024;
const env = makeEnv();
const handles = new Set<RuntimeHandle>();
let rt: NamespaceRuntime;
let hostile: RuntimeHandle;
let neighbour: RuntimeHandle;

async function start(r: NamespaceRuntime, id = `cl-d${rand()}`): Promise<RuntimeHandle> {
  const h = await r.create(spec(id));
  handles.add(h);
  return h;
}

async function sh(h: RuntimeHandle, script: string, uid = 0) {
  return execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 60_000, uid, gid: uid });
}

const sandbox = (h: RuntimeHandle) => h.state.sandboxDir as string;
/** Bytes the file really occupies on the host (sparse images count what is written). */
const allocated = (path: string) => statSync(path).blocks * 512;
/** Bytes allocated under `dir` on its own file system (capsule disks are other mounts: skipped). */
const hostBytesUnder = (dir: string) =>
  Number(execFileSync('du', ['-sx', '-B1', dir], { encoding: 'utf8' }).split('\t')[0]);

async function neighbourWorks(): Promise<void> {
  const r = await sh(
    neighbour,
    'dd if=/dev/zero of=/root/n bs=1M count=8 2>&1 && rm /root/n && wget -q -O /dev/null http://127.0.0.1:49983/health && echo ok',
  );
  assert.equal(r.code, 0, `neighbour failed: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /ok\n$/);
}

before(async () => {
  rt = env.runtime({ diskMb: DISK_MB });
  [hostile, neighbour] = [await start(rt), await start(rt)];
});

after(async () => {
  for (const h of handles) await rt.destroy(h).catch((err) => console.error('destroy', h.id, err));
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, [], `left behind: ${left.join(', ')}`);
});

test('root inside fills /etc/hosts: ENOSPC at the capsule quota, df / shows it, the host data dir does not grow', async () => {
  const hostBefore = hostBytesUnder(env.dataDir);
  // The /etc files are on the capsule's disk, outside its upper layer; none in the sandbox dir.
  assert.ok(existsSync(join(sandbox(hostile), 'disk/etc-files/hosts')));
  assert.equal(existsSync(join(sandbox(hostile), 'etc')), false, '/etc files still in the host sandbox dir');
  // Stored canonically (uid 100000) like the upper layer, seen as root's inside through the idmap.
  assert.equal(statSync(join(sandbox(hostile), 'disk/etc-files/hosts')).uid, 100000);
  assert.match(
    (await sh(hostile, 'ls -ln /etc/hosts /etc/hostname /etc/resolv.conf')).stdout,
    /^(-rw-r--r--\s+1\s+0\s+0\s.*\n){3}$/,
  );
  // The default user cannot write it at all.
  assert.notEqual((await sh(hostile, 'echo 10.6.6.6 evil >> /etc/hosts', 1000)).code, 0);

  const fill = await sh(hostile, 'cat /dev/zero >> /etc/hosts; echo "exit=$?"; ls -l /etc/hosts; df -k / | tail -1');
  console.log(`# fill /etc/hosts: ${fill.stdout.trim().replace(/\n/g, ' | ')} ${fill.stderr.trim()}`);
  assert.match(fill.stderr, /No space left on device/);
  assert.doesNotMatch(fill.stdout, /exit=0/);
  const size = Number(fill.stdout.split('\n')[1]?.trim().split(/\s+/)[4]);
  assert.ok(size > (DISK_MB - 16) * MiB && size <= DISK_MB * MiB, `/etc/hosts grew to ${size} bytes`);
  // df / inside: the capsule's own disk, full.
  const [, totalKb, usedKb] = (fill.stdout.trim().split('\n').at(-1) ?? '').split(/\s+/).map(Number);
  assert.ok(totalKb !== undefined && totalKb <= DISK_MB * 1024, `df / total ${totalKb} KiB`);
  assert.ok(usedKb !== undefined && usedKb > (DISK_MB - 16) * 1024, `df / used ${usedKb} KiB after the fill`);

  const grew = hostBytesUnder(env.dataDir) - hostBefore;
  const image = allocated(join(sandbox(hostile), 'disk.img'));
  console.log(
    `# host data dir grew ${(grew / MiB).toFixed(1)} MiB (quota ${DISK_MB} MiB); the image holds ${(image / MiB).toFixed(1)} MiB`,
  );
  assert.ok(grew <= (DISK_MB + 4) * MiB, `host data dir grew ${grew} bytes, more than the ${DISK_MB} MiB quota`);
  await neighbourWorks();

  // With its disk full, a rename (a pooled capsule handed out) still rewrites its /etc files.
  await rt.setHostname(hostile, 'cl-renamed');
  const renamed = await sh(hostile, 'hostname; cat /etc/hostname; grep -c cl-renamed /etc/hosts; wc -c < /etc/hosts');
  assert.match(renamed.stdout, /^cl-renamed\ncl-renamed\n1\n\d+\n$/, renamed.stdout + renamed.stderr);
  assert.ok(Number(renamed.stdout.split('\n')[3]) < 200);
});

test('rm inside gives the space back to the host (discard punches holes in the sparse image)', async () => {
  const image = join(sandbox(hostile), 'disk.img');
  // Settle first: the previous test's truncation of /etc/hosts is still being discarded.
  await sh(hostile, 'sync');
  let base = allocated(image);
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const b = allocated(image);
    if (b === base) break;
    base = b;
  }
  const w = await sh(hostile, 'dd if=/dev/urandom of=/root/big bs=1M count=50 2>&1 && sync');
  assert.equal(w.code, 0, w.stdout + w.stderr);
  const full = allocated(image);
  assert.ok(full - base >= 45 * MiB, `the image grew only ${full - base} bytes for 50 MiB written`);
  assert.equal((await sh(hostile, 'rm /root/big && sync')).code, 0);
  let now = allocated(image);
  // ext4 discards freed blocks when its journal commits (sync forces one); give it a few seconds.
  for (let i = 0; i < 100 && full - now < 45 * MiB; i++) {
    await sleep(100);
    now = allocated(image);
  }
  console.log(
    `# disk.img allocated: ${(base / MiB).toFixed(1)} MiB, after 50 MiB written ${(full / MiB).toFixed(1)}, after rm ${(now / MiB).toFixed(1)}`,
  );
  assert.ok(full - now >= 45 * MiB, `after rm the image still holds ${now} bytes (was ${full})`);
  await neighbourWorks();
});

/** Waits until the helper has copied what the capsule wrote (the two log files stop changing). */
async function settledLogSizes(log: string): Promise<{ cur: number; rotated: number }> {
  const sizes = () => ({ cur: statSync(log).size, rotated: existsSync(`${log}.1`) ? statSync(`${log}.1`).size : 0 });
  let last = sizes();
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const now = sizes();
    if (now.cur === last.cur && now.rotated === last.rotated) break;
    last = now;
  }
  return last;
}

function assertCapped(log: string, sizes: { cur: number; rotated: number }, what: string): void {
  console.log(
    `# ${what}: envd.log ${sizes.cur} bytes, envd.log.1 ${sizes.rotated} bytes (cap ${ENVD_LOG_MAX_BYTES} each)`,
  );
  const slack = 200; // one marker line past the cap
  assert.ok(sizes.cur <= ENVD_LOG_MAX_BYTES + slack, `envd.log is ${sizes.cur} bytes`);
  assert.ok(sizes.rotated <= ENVD_LOG_MAX_BYTES + slack, `envd.log.1 is ${sizes.rotated} bytes`);
  assert.ok(sizes.rotated > 0, 'the log was not rotated (envd.log.1 missing)');
  assert.match(readFileSync(log, 'utf8'), /wrenn-nsinit: capsule output over the log cap: dropping it/);
}

// pidfd_open + pidfd_getfd of envd's fd, then write the given number of bytes into it.
const STEAL_FD = `
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 4) return 64;
  int pidfd = (int)syscall(434, atoi(argv[1]), 0);
  if (pidfd < 0) { printf("pidfd_open refused: %s\\n", strerror(errno)); return 2; }
  int fd = (int)syscall(438, pidfd, atoi(argv[2]), 0);
  if (fd < 0) { printf("pidfd_getfd refused: %s\\n", strerror(errno)); return 3; }
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  target[n > 0 ? n : 0] = 0;
  printf("got %s\\n", target);
  static char chunk[65536];
  memset(chunk, 'z', sizeof chunk);
  long want = atol(argv[3]), done = 0;
  while (done < want) {
    ssize_t w = write(fd, chunk, sizeof chunk);
    if (w < 0 && errno == EAGAIN) { /* envd's node made its stdout non-blocking: wait for room */
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, 5000) <= 0) break;
      continue;
    }
    if (w <= 0) break;
    done += w;
  }
  printf("wrote %ld\\n", done);
  return 0;
}
`;

test("envd's stdout/stderr are a pipe the capsule cannot reopen; a stolen fd cannot grow the host log past its cap", async () => {
  // envd is PID 2 under the init (PID 1).
  const fds = await sh(
    hostile,
    'readlink /proc/2/fd/1; readlink /proc/2/fd/2; readlink /proc/1/fd/1 || echo init-hidden',
  );
  console.log(`# inside: envd's fd 1, fd 2, the init's fd 1: ${fds.stdout.trim().replace(/\n/g, ', ')}`);
  assert.match(fds.stdout, /^pipe:\[\d+\]\npipe:\[\d+\]\ninit-hidden\n$/, fds.stdout + fds.stderr);
  // The pipe belongs to host root: reopening it through /proc is refused, as root and as the user.
  for (const uid of [0, 1000]) {
    const r = await sh(hostile, 'echo x > /proc/2/fd/1 && echo opened', uid);
    assert.notEqual(r.code, 0, `uid ${uid} inside opened envd's stdout through /proc: ${r.stdout}`);
  }
  // pidfd_getfd duplicates the fd without that check: with it, root writes 16 MiB into envd's stdout.
  await installInCapsule(hostile, compileStatic(STEAL_FD), '/root/steal-fd');
  const log = join(sandbox(hostile), 'envd.log');
  const stolen = await sh(hostile, `/root/steal-fd 2 1 ${16 * MiB}`);
  console.log(`# pidfd_getfd probe as root inside: ${stolen.stdout.trim().replace(/\n/g, ', ')} (exit ${stolen.code})`);
  if (/pidfd_(open|getfd) refused/.test(stolen.stdout)) {
    console.log("# the capsule cannot take envd's fd at all (seccomp): contained before the log cap matters");
  } else {
    assert.equal(stolen.code, 0, stolen.stdout + stolen.stderr);
    assert.match(stolen.stdout, /^got pipe:\[\d+\]\nwrote 16777216\n$/);
    assertCapped(log, await settledLogSizes(log), "16 MiB written into envd's stolen stdout");
  }
  // envd is still serving, and the neighbour too.
  assert.equal((await sh(hostile, 'wget -q -O /dev/null http://127.0.0.1:49983/health && echo up')).stdout, 'up\n');
  assert.equal(await rt.isAlive(hostile), true);
  await neighbourWorks();
});

test('a main process flooding its own stdout and stderr keeps the host log within its cap, and keeps running', async () => {
  const flooding = env.runtime({
    diskMb: DISK_MB,
    mainCommand: (node) => [
      ...node,
      '-e',
      // 24 MiB to stdout and stderr (blocking writes: every byte goes through the pipe), then serve.
      "const fs=require('fs');const b=Buffer.alloc(1<<20,120);for(let i=0;i<12;i++){fs.writeSync(1,b);fs.writeSync(2,b)}" +
        "require('http').createServer((q,s)=>{s.writeHead(204);s.end()}).listen(49983,'0.0.0.0')",
    ],
  });
  const h = await start(flooding);
  const log = join(sandbox(h), 'envd.log');
  assertCapped(log, await settledLogSizes(log), 'a main process that wrote 24 MiB');
  assert.equal((await sh(h, 'wget -q -O /dev/null http://127.0.0.1:49983/health && echo up')).stdout, 'up\n');
  await flooding.destroy(h);
  handles.delete(h);
  await neighbourWorks();
});

test("a capsule that fails to start still shows its output's tail in the error", async () => {
  const failing = env.runtime({
    diskMb: DISK_MB,
    mainCommand: (node) => [...node, '-e', 'console.error("boom from the main process"); process.exit(3)'],
  });
  await assert.rejects(failing.create(spec(`cl-f${rand()}`)), (err: Error) => {
    assert.match(err.message, /exited with code 3/);
    assert.match(err.message, /boom from the main process/);
    return true;
  });
});

test('a create whose disk the host cannot hold is refused with a capacity error (resource_exhausted)', async () => {
  const fs = statfsSync(env.dataDir);
  const freeMb = Math.floor((fs.bavail * fs.bsize) / MiB);
  const tooBig = env.runtime({ diskMb: freeMb + 1, diskReserveMb: 0 });
  const noReserve = env.runtime({ diskMb: 16, diskReserveMb: freeMb });
  for (const [what, r] of [
    ['a disk larger than the free space', tooBig],
    ['a reserve the disk would eat into', noReserve],
  ] as const) {
    const id = `cl-c${rand()}`;
    await assert.rejects(r.create(spec(id)), (err: Error) => {
      assert.ok(err instanceof HostCapacityError, `${what}: ${err.message}`);
      assert.match(err.message, /not enough disk space on this host for a capsule.*MiB free/);
      assert.equal(toConnectError(err).code, Code.ResourceExhausted);
      return true;
    });
    assert.equal(existsSync(join(env.dataDir, 'sandboxes', id)), false);
  }
  await neighbourWorks();
});
