// loopMount/unmount for real (root, loop devices): an ext4 image mounted through a free loop
// device with its options, the device freed again by the unmount (autoclear), errors with errno.
// idmappedBind for real: stored ids shown shifted, new files stored shifted back, ids outside the
// map refused, nosuid and nodev.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { idmappedBind, loopMount, splitMountOptions, unmount } from '../src/index.js';

const isRoot = process.getuid?.() === 0;

test('mount options split into flags and file system data', () => {
  assert.deepEqual(splitMountOptions('loop,nodev,discard'), { flags: 4, data: 'discard' });
  assert.deepEqual(splitMountOptions('ro,nosuid,noexec,errors=remount-ro'), {
    flags: 1 | 2 | 8,
    data: 'errors=remount-ro',
  });
});

test('an ext4 image is loop-mounted with its options and the device is freed at unmount', {
  skip: !isRoot && 'needs root',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-loopmount-'));
  const image = join(dir, 'disk.img');
  const target = join(dir, 'mnt');
  let mounted = false;
  try {
    execFileSync('truncate', ['-s', '16M', image]);
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    mkdirSync(target);
    const dev = await loopMount(image, target, 'ext4', 'loop,nodev,discard');
    mounted = true;
    assert.match(dev, /^\/dev\/loop\d+$/);
    const line =
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === target) ?? '';
    assert.match(line, /nodev/);
    assert.match(line, new RegExp(`- ext4 ${dev} rw,discard`));
    writeFileSync(join(target, 'f'), 'x');
    await unmount(target);
    mounted = false;
    assert.equal(existsSync(join(target, 'f')), false);
    // autoclear: the device lets go of the image once unmounted (the kernel does it in a work queue)
    const back = `/sys/block/${dev.slice(5)}/loop/backing_file`;
    const holds = () => existsSync(back) && readFileSync(back, 'utf8').trim() === image;
    for (let i = 0; i < 200 && holds(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(!holds(), 'the loop device still holds the image 2 s after the unmount');
    await assert.rejects(unmount(target), (e: Error & { errno?: number }) => e.errno === 22);
    await assert.rejects(loopMount(join(dir, 'missing.img'), target, 'ext4'), /open .*missing\.img: No such file/);
  } finally {
    if (mounted) execFileSync('umount', [target]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an idmapped bind shows stored ids shifted, stores new ones shifted back, refuses ids outside its map', {
  skip: !isRoot && 'needs root',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-idmapbind-'));
  const src = join(dir, 'src');
  const target = join(dir, 'export');
  let mounted = false;
  try {
    mkdirSync(src);
    chownSync(src, 100000, 100000); // root's through the map (an unmapped owner gives root no override)
    mkdirSync(target);
    writeFileSync(join(src, 'user'), 'u');
    chownSync(join(src, 'user'), 101000, 101000);
    writeFileSync(join(src, 'host-root'), 'r'); // stored as 0: outside the map
    await assert.rejects(idmappedBind(src, target, '100000 0'), /is not "<stored> <shown> <count>"/);
    await idmappedBind(src, target, '100000 0 65536');
    mounted = true;
    assert.equal(lstatSync(join(target, 'user')).uid, 1000);
    assert.equal(lstatSync(join(target, 'host-root')).uid, 65534, 'an unmapped owner shows as the overflow id');
    writeFileSync(join(target, 'new'), 'n');
    chownSync(join(target, 'new'), 5, 5);
    assert.equal(lstatSync(join(src, 'new')).uid, 100005, 'stored in the shifted range');
    assert.throws(() => chownSync(join(target, 'new'), 70000, 70000), /EOVERFLOW|EINVAL/);
    const line =
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === target) ?? '';
    assert.match(line.split(' ')[5] ?? '', /nosuid/);
    assert.match(line.split(' ')[5] ?? '', /nodev/);
    assert.match(line, /idmapped/);
    await unmount(target);
    mounted = false;
    await assert.rejects(idmappedBind(join(dir, 'missing'), target, '100000 0 65536'), /open_tree .*missing/);
  } finally {
    if (mounted) execFileSync('umount', [target]);
    rmSync(dir, { recursive: true, force: true });
  }
});
