// The sweep of what killed test runs leave (src/testing/stale-fixtures.ts): a dnsmasq on a test
// resolver's address is killed and one on another address is not; a marked data dir whose owner is
// gone loses its loop-mounted disk, its loop device and itself, while a dir whose owner lives and
// an unmarked one stay.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loopMount } from '@wrenn/native';
import { mountsUnder, removeTree } from '../src/rootfs/remove-tree.js';
import { formatExt4Image } from '../src/runtimes/namespace/quota-disk.js';
import {
  killStaleDnsmasq,
  markTestDir,
  OWNER_FILE,
  ownerGone,
  processStartTime,
  sweepStaleTestDirs,
} from '../src/testing/stale-fixtures.js';

const hasDnsmasq = existsSync('/usr/sbin/dnsmasq');
const isRoot = process.getuid?.() === 0;

/** The pid of a process that ran and is gone (reaped). */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

function loopsBackedBy(prefix: string): string[] {
  return readdirSync('/sys/block')
    .filter((n) => n.startsWith('loop'))
    .filter((n) => {
      try {
        return readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').startsWith(prefix);
      } catch {
        return false;
      }
    });
}

describe('stale test fixtures', () => {
  const parent = mkdtempSync(join(tmpdir(), 'stale-sweep-'));
  after(async () => {
    await removeTree(parent);
  });

  it('a mark names a live owner; a dead or reused pid is gone; no mark is unknown', () => {
    const live = join(parent, 'wrenn-mine');
    mkdirSync(live);
    markTestDir(live);
    assert.equal(ownerGone(live), false);
    const dead = join(parent, 'wrenn-dead');
    mkdirSync(dead);
    writeFileSync(join(dead, OWNER_FILE), `${deadPid()} 12345\n`);
    assert.equal(ownerGone(dead), true);
    // Our own pid with another start time: a reused pid, so the owner is gone.
    const reused = join(parent, 'wrenn-reused');
    mkdirSync(reused);
    writeFileSync(join(reused, OWNER_FILE), `${process.pid} ${(processStartTime(process.pid) ?? 0) + 1}\n`);
    assert.equal(ownerGone(reused), true);
    const unmarked = join(parent, 'wrenn-unmarked');
    mkdirSync(unmarked);
    assert.equal(ownerGone(unmarked), undefined);
    writeFileSync(join(unmarked, OWNER_FILE), 'garbage');
    assert.equal(ownerGone(unmarked), undefined);
    for (const d of [live, dead, reused, unmarked]) rmSync(d, { recursive: true });
  });

  it('sweeps a dead owner’s dir with its loop-mounted disk; leaves live and unmarked dirs', {
    skip: !isRoot && 'needs root (loop mounts)',
  }, async () => {
    const mk = (name: string) => {
      const d = join(parent, name);
      mkdirSync(join(d, 'sandboxes', 'cl-x', 'disk'), { recursive: true });
      return d;
    };
    const stale = mk('wrenn-stale-live-a');
    const live = mk('wrenn-live-live-b');
    const unmarked = mk('wrenn-unmarked-live-c');
    const other = mk('other-prefix');
    writeFileSync(join(stale, OWNER_FILE), `${deadPid()} 1\n`);
    writeFileSync(join(other, OWNER_FILE), `${deadPid()} 1\n`);
    markTestDir(live);
    for (const d of [stale, live]) {
      const img = join(d, 'sandboxes', 'cl-x', 'disk.img');
      await formatExt4Image(img, 8, 0);
      await loopMount(img, join(d, 'sandboxes', 'cl-x', 'disk'), 'ext4', 'loop,nodev');
      writeFileSync(join(d, 'sandboxes', 'cl-x', 'disk', 'f'), 'x');
    }
    assert.equal((await mountsUnder(stale)).length, 1);
    assert.equal(loopsBackedBy(`${stale}/`).length, 1);
    try {
      const removed = await sweepStaleTestDirs(parent, 'wrenn-');
      assert.deepEqual(removed, [stale]);
      assert.equal(existsSync(stale), false);
      assert.deepEqual(await mountsUnder(stale), []);
      assert.deepEqual(loopsBackedBy(`${stale}/`), [], 'the loop device went with the mount');
      assert.equal(
        readFileSync(join(live, 'sandboxes', 'cl-x', 'disk', 'f'), 'utf8'),
        'x',
        'a live owner keeps its disk',
      );
      assert.ok(existsSync(unmarked));
      assert.ok(existsSync(other), 'another prefix is not looked at');
    } finally {
      await removeTree(live);
      await removeTree(stale);
    }
  });

  it('kills a dnsmasq bound to the given address only', {
    skip: (!hasDnsmasq || !isRoot) && 'needs dnsmasq and root',
  }, async () => {
    const start = (addr: string) =>
      spawn(
        'dnsmasq',
        [
          '--keep-in-foreground',
          '--conf-file=/dev/null',
          '--no-resolv',
          '--no-hosts',
          `--listen-address=${addr}`,
          '--bind-interfaces',
          '--port=53',
          '--pid-file=',
          '--user=nobody',
        ],
        { stdio: 'ignore' },
      );
    // Loopback addresses of this test's own.
    const mine = start('127.88.1.53');
    const neighbour = start('127.88.1.54');
    try {
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(mine.exitCode, null, 'dnsmasq started');
      const exited = new Promise((r) => mine.once('exit', r));
      const killed = await killStaleDnsmasq('127.88.1.53');
      assert.deepEqual(killed, [mine.pid]);
      await exited;
      assert.equal(mine.signalCode, 'SIGKILL');
      assert.equal(neighbour.exitCode, null, 'the dnsmasq on another address lives');
      assert.ok(processStartTime(neighbour.pid ?? 0) !== undefined);
      assert.deepEqual(await killStaleDnsmasq('127.88.1.55'), [], 'nothing on an unused address');
    } finally {
      mine.kill('SIGKILL');
      neighbour.kill('SIGKILL');
    }
  });
});
