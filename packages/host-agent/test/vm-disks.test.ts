// Copy-on-write VM root disks on real loop devices and real files. This kernel has no
// device-mapper: the snapshot device itself is not created here; everything up to it is (the
// shared read-only base loop device and its refcount, the sparse CoW file on its own loop device,
// the table built from their real names and sizes), and the dm step must fail cleanly, naming the
// missing device-mapper and leaving nothing behind. The fallback copies (sparse, and reflink on a
// real loop-mounted XFS) run for real. On a host with device-mapper the full snapshot test runs.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  attachArgs,
  attachLoop,
  BaseLoops,
  CHUNK_SECTORS,
  classifyDmsetupError,
  copyArgs,
  cowBytes,
  createCowDisks,
  detachLoop,
  detectDeviceMapper,
  detectReflink,
  dmCreateCommands,
  dmPath,
  dmRemovalOrder,
  flattenDisk,
  listLoops,
  parseDriverVersion,
  snapshotTable,
} from '../src/vm/disks/index.js';
import { runTool } from '../src/vm/disks/tool.js';

const PREFIX = 'wrenn-test-disks-';
const MiB = 1024 ** 2;
const skip = process.getuid?.() !== 0 ? 'needs root (loop devices)' : false;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fileSha = async (p: string) => sha(await readFile(p));

/** Loop devices whose backing file lies under `dir`. */
async function loopsUnder(dir: string): Promise<string[]> {
  return (await listLoops()).filter((d) => d.backFile.startsWith(`${dir}/`)).map((d) => d.name);
}

/** Unmounts and detaches everything under `dir`, then removes it: runs even when a test failed. */
async function cleanDir(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const m of mounts.filter((m) => m.startsWith(`${dir}/`)).reverse()) await runTool('umount', ['-l', m]);
  for (const dev of await loopsUnder(dir)) await detachLoop(dev).catch((e) => console.error(e));
  await rm(dir, { recursive: true, force: true });
}

/** A fresh temporary directory removed (with its loop devices and mounts) after the test. */
async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  // Leftovers of an earlier, killed run first.
  for (const old of await readdir(tmpdir())) if (old.startsWith(PREFIX)) await cleanDir(join(tmpdir(), old));
  const dir = await mkdtemp(join(tmpdir(), PREFIX));
  t.after(() => cleanDir(dir));
  return dir;
}

/** A real ext4 image with files in it: mostly holes, like a template's rootfs.ext4. */
async function makeBaseImage(path: string, sizeMiB = 64): Promise<void> {
  const src = `${path}.d`;
  await mkdir(join(src, 'etc'), { recursive: true });
  await writeFile(join(src, 'etc/hostname'), 'wrenn-test\n');
  await writeFile(join(src, 'blob'), randomBytes(512 * 1024));
  const r = await runTool('mkfs.ext4', ['-q', '-F', '-d', src, path, `${sizeMiB}M`]);
  assert.equal(r.code, 0, `mkfs.ext4: ${r.stderr}`);
  await rm(src, { recursive: true, force: true });
}

async function isSparse(path: string): Promise<boolean> {
  const st = await stat(path);
  return st.blocks * 512 < st.size;
}

test('dm snapshot table, CoW file size and the command sequence, as data', () => {
  assert.equal(CHUNK_SECTORS, 8, '4 KiB chunks');
  assert.equal(
    snapshotTable({ sectors: 131072, baseLoop: '/dev/loop3', cowLoop: '/dev/loop4' }),
    '0 131072 snapshot /dev/loop3 /dev/loop4 P 8',
  );
  assert.throws(
    () => snapshotTable({ sectors: 0, baseLoop: '/dev/loop3', cowLoop: '/dev/loop4' }),
    /positive number of sectors/,
  );
  assert.throws(
    () => snapshotTable({ sectors: 8, baseLoop: '/dev/loop3', cowLoop: '/dev/loop4', chunkSectors: 12 }),
    /power of two/,
  );
  assert.throws(
    () => snapshotTable({ sectors: 8, baseLoop: 'loop3; rm -rf /', cowLoop: '/dev/loop4' }),
    /not a device path/,
  );
  // 64 MiB base = 16384 chunks of 4 KiB, 256 exceptions per metadata chunk -> 64 metadata chunks, + the header.
  assert.equal(cowBytes(64 * MiB), (1 + 64 + 16384) * 4096);
  assert.equal(cowBytes(64 * MiB, MiB), (1 + 64 + 16384) * 4096 + MiB, 'configurable extra');
  assert.equal(cowBytes(4096 + 512), (1 + 1 + 2) * 4096, 'a partial last chunk counts whole');
  assert.throws(() => cowBytes(1000), /multiple of 512/);
  assert.throws(() => cowBytes(4096, -1), /extraBytes/);
  assert.deepEqual(attachArgs('/d/disks/cl-a/cow', false), ['--find', '--show', '--', '/d/disks/cl-a/cow']);
  assert.deepEqual(attachArgs('/d/images/minimal/rootfs.ext4', true), [
    '--find',
    '--show',
    '--read-only',
    '--',
    '/d/images/minimal/rootfs.ext4',
  ]);
  const table = '0 131072 snapshot /dev/loop3 /dev/loop4 P 8';
  assert.deepEqual(dmCreateCommands({ id: 'cl-a', table, tag: '0123abcd' }), [
    ['dmsetup', 'create', 'wrenn-cl-a', '--uuid', 'WRENN-0123abcd-cl-a', '--noudevsync', '--table', table],
    ['dmsetup', 'mknodes', 'wrenn-cl-a'],
  ]);
  assert.equal(dmPath('cl-a'), '/dev/mapper/wrenn-cl-a');
  assert.deepEqual(dmRemovalOrder({ id: 'cl-a', cowLoop: '/dev/loop4' }), [
    ['dmsetup', 'remove', '--noudevsync', 'wrenn-cl-a'],
    ['losetup', '--detach', '/dev/loop4'],
  ]);
  assert.deepEqual(copyArgs('reflink', '/a', '/b'), ['--reflink=always', '--', '/a', '/b']);
  assert.deepEqual(copyArgs('sparse-copy', '/a', '/b'), ['--sparse=always', '--', '/a', '/b']);
  assert.equal(parseDriverVersion('Library version:   1.02.185 (2022-05-18)\nDriver version:    4.48.0\n'), '4.48.0');
  assert.equal(parseDriverVersion('Library version:   1.02.185 (2022-05-18)\n'), undefined);
});

test("dmsetup's failures told apart from its own messages; a real one from this host", async (t) => {
  assert.equal(
    classifyDmsetupError(
      '/dev/mapper/control: open failed: No such device\nFailure to communicate with kernel device-mapper driver.',
    ),
    'no-device-mapper',
  );
  assert.equal(
    classifyDmsetupError('device-mapper: remove ioctl on wrenn-cl-a  failed: Device or resource busy\nCommand failed.'),
    'busy',
  );
  assert.equal(classifyDmsetupError('Device wrenn-cl-a not found\nCommand failed.'), 'not-found');
  assert.equal(classifyDmsetupError('device-mapper: reload ioctl on wrenn-cl-a failed: Invalid argument'), 'other');
  // What dmsetup says here when asked to remove a device that cannot exist.
  const r = await runTool('dmsetup', ['remove', '--noudevsync', 'wrenn-test-no-such-device']);
  assert.notEqual(r.code, 0);
  const dm = await detectDeviceMapper();
  assert.equal(classifyDmsetupError(r.stderr), dm.usable ? 'not-found' : 'no-device-mapper', r.stderr);
  t.diagnostic(`dmsetup remove of a missing device here: ${r.stderr.trim().split('\n')[0]}`);
});

test('device-mapper detection on this host', async (t) => {
  const dm = await detectDeviceMapper();
  const r = await runTool('dmsetup', ['version']);
  assert.equal(
    dm.usable,
    r.code === 0 && /Driver version/.test(r.stdout),
    'usable exactly when the kernel driver answers',
  );
  if (!dm.usable)
    assert.match(
      dm.reason,
      /no device-mapper: (\/dev\/mapper\/control does not exist|the kernel driver does not answer)/,
    );
  t.diagnostic(`device-mapper on this host: ${dm.usable ? 'usable' : 'NOT usable'} (${dm.reason})`);
});

test('sparse-copy disks for real: content equal, file sparse, base untouched, released', { skip }, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'images/minimal/rootfs.ext4');
  await mkdir(join(dir, 'images/minimal'), { recursive: true });
  await makeBaseImage(base);
  const baseSha = await fileSha(base);
  const disks = await createCowDisks({ dataDir: dir, kind: 'sparse-copy' });
  assert.equal(disks.kind, 'sparse-copy');
  const disk = await disks.create('cl-copy1', base);
  assert.equal(disk.kind, 'sparse-copy');
  assert.equal(disk.path, join(dir, 'disks/cl-copy1/rootfs.ext4'));
  assert.equal(await fileSha(disk.path), baseSha, 'the copy holds the base image byte for byte');
  assert.ok(await isSparse(disk.path), 'the copy keeps the holes');
  assert.ok((await disks.usedBytes('cl-copy1')) < 64 * MiB);
  // The capsule writes to its disk; the base does not change.
  const fh = await open(disk.path, 'r+');
  await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 32 * MiB);
  await fh.close();
  assert.equal(await fileSha(base), baseSha, 'the base image is untouched');
  await assert.rejects(disks.create('cl-copy1', base), /already has a disk/);
  await assert.rejects(
    disks.create('cl-copy2', join(dir, 'nope.ext4')),
    /does not exist: build the template's VM image first/,
  );
  assert.ok(!existsSync(join(dir, 'disks/cl-copy2')), 'a failed create leaves no directory');
  // Another instance (an agent restart) finds and releases it from its record.
  const again = await createCowDisks({ dataDir: dir, kind: 'sparse-copy' });
  assert.equal((await again.get('cl-copy1'))?.path, disk.path);
  await (await again.get('cl-copy1'))?.release();
  assert.ok(!existsSync(join(dir, 'disks/cl-copy1')), 'released: the copy and its record are gone');
  await disk.release(); // idempotent
  // Detection on this file system (ext4 cannot reflink): the default kind without device-mapper.
  const dm = await detectDeviceMapper();
  if (!dm.usable) {
    assert.equal(await detectReflink(join(dir, 'disks')), false, 'ext4 cannot reflink');
    const auto = await createCowDisks({ dataDir: dir });
    assert.equal(auto.kind, 'sparse-copy');
    t.diagnostic(`chosen here: ${auto.reason}`);
  }
});

test('reflink disks for real on a loop-mounted XFS: blocks shared with the base, content equal', {
  skip,
}, async (t) => {
  if (!existsSync('/usr/sbin/mkfs.xfs') && !existsSync('/sbin/mkfs.xfs')) {
    t.skip('mkfs.xfs is not installed (Debian package xfsprogs): the reflink path was not exercised');
    return;
  }
  const dir = await tempDir(t);
  const fsImage = join(dir, 'xfs.img');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const fh = await open(fsImage, 'w');
  await fh.truncate(512 * MiB);
  await fh.close();
  const mk = await runTool('mkfs.xfs', ['-q', '-m', 'reflink=1', fsImage]);
  assert.equal(mk.code, 0, `mkfs.xfs: ${mk.stderr}`);
  const dev = await attachLoop(fsImage, false);
  const m = await runTool('mount', [dev, mnt]);
  assert.equal(m.code, 0, `mount: ${m.stderr}`);
  const base = join(mnt, 'images/minimal/rootfs.ext4');
  await mkdir(join(mnt, 'images/minimal'), { recursive: true });
  await makeBaseImage(base);
  const dm = await detectDeviceMapper();
  const disks = await createCowDisks(dm.usable ? { dataDir: mnt, kind: 'reflink' } : { dataDir: mnt });
  assert.equal(disks.kind, 'reflink', `chosen: ${disks.reason}`);
  t.diagnostic(`chosen on XFS: ${disks.reason}`);
  const disk = await disks.create('cl-reflink1', base);
  assert.equal(await fileSha(disk.path), await fileSha(base), 'content equal');
  const frag = await runTool('filefrag', ['-v', disk.path]);
  assert.match(frag.stdout, /shared/, 'the copy shares its extents with the base (FIEMAP says "shared")');
  assert.ok(await isSparse(disk.path), 'holes stay holes');
  await disk.release();
  assert.ok(!existsSync(disk.path));
  const u = await runTool('umount', [mnt]);
  assert.equal(u.code, 0, `umount: ${u.stderr}`);
  await detachLoop(dev);
});

test('base loop devices for real: two capsules share one read-only device, refcount persisted, detached after the last release', {
  skip,
}, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'images/minimal/rootfs.ext4');
  await mkdir(join(dir, 'images/minimal'), { recursive: true });
  await makeBaseImage(base, 16);
  const stateFile = join(dir, 'disks/bases.json');
  const a = new BaseLoops(stateFile);
  const loopA = await a.acquire(base, 'cl-a');
  const loopB = await a.acquire(base, 'cl-b');
  assert.equal(loopA, loopB, 'one loop device per base image');
  assert.equal(await a.acquire(base, 'cl-b'), loopA, 'acquiring again for the same capsule counts once');
  const dev = (await listLoops()).find((d) => d.name === loopA);
  assert.equal(dev?.backFile, base);
  assert.equal(dev?.readOnly, true, 'attached read-only');
  const w = await runTool('dd', ['if=/dev/zero', `of=${loopA}`, 'bs=4096', 'count=1', 'conv=notrunc', 'status=none']);
  assert.notEqual(w.code, 0, 'the base loop device refuses writes');
  // A restarted agent reads the refcount from disk.
  // Capsules starting at the same time still share one device.
  const together = await Promise.all(['cl-p1', 'cl-p2', 'cl-p3'].map((u) => a.acquire(base, u)));
  assert.deepEqual(together, [loopA, loopA, loopA]);
  for (const u of ['cl-p1', 'cl-p2', 'cl-p3']) await a.release(loopA, u);
  const b = new BaseLoops(stateFile);
  assert.deepEqual(
    (await b.entries()).map((e) => ({ image: e.image, loop: e.loop, users: e.users })),
    [{ image: base, loop: loopA, users: ['cl-a', 'cl-b'] }],
  );
  assert.equal(await b.acquire(base, 'cl-c'), loopA, 'the new instance reuses the persisted device');
  // A rebuilt image (new file renamed over the old one) gets a device of its own.
  await makeBaseImage(`${base}.new`, 16);
  await rename(`${base}.new`, base);
  const loopNew = await b.acquire(base, 'cl-d');
  assert.notEqual(loopNew, loopA, 'the rebuilt image has its own device; the old one keeps serving its capsules');
  await b.release(loopNew, 'cl-d');
  assert.ok(!(await listLoops()).some((d) => d.name === loopNew), 'released by its only user: detached');
  await b.release(loopA, 'cl-a');
  await a.release(loopA, 'cl-c');
  assert.ok(
    (await listLoops()).some((d) => d.name === loopA),
    'still attached while cl-b uses it',
  );
  assert.deepEqual((await a.entries())[0]?.users, ['cl-b']);
  await a.release(loopA, 'cl-b');
  assert.ok(!(await listLoops()).some((d) => d.name === loopA), 'detached after the last release');
  assert.deepEqual(await b.entries(), []);
  assert.deepEqual(await loopsUnder(dir), [], 'no loop device left');
});

test('device-mapper disk: base and CoW loop devices made for real; the dm snapshot step fails cleanly here (no device-mapper in this kernel), leaving nothing behind', {
  skip,
}, async (t) => {
  const dm = await detectDeviceMapper();
  const dir = await tempDir(t);
  const base = join(dir, 'images/minimal/rootfs.ext4');
  await mkdir(join(dir, 'images/minimal'), { recursive: true });
  await makeBaseImage(base);
  const disks = await createCowDisks({ dataDir: dir, kind: 'device-mapper' });
  if (dm.usable) {
    // A host with device-mapper: the whole path for real.
    const disk = await disks.create('cl-dm1', base);
    assert.equal(disk.path, '/dev/mapper/wrenn-cl-dm1');
    assert.ok((await stat(disk.path)).isBlockDevice());
    const baseSha = await fileSha(base);
    const w = await runTool('dd', [
      `of=${disk.path}`,
      'if=/dev/urandom',
      'bs=4096',
      'count=16',
      'seek=100',
      'conv=notrunc,fsync',
      'status=none',
    ]);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(await fileSha(base), baseSha, 'writes went to the CoW file, not the base');
    const flat = join(dir, 'flat.ext4');
    await flattenDisk(disk.path, flat);
    assert.notEqual(await fileSha(flat), baseSha, 'the flattened copy holds the written chunks');
    assert.ok(await isSparse(flat));
    await disk.release();
    assert.deepEqual(await loopsUnder(dir), [], 'no loop device left after release');
    t.diagnostic(`device-mapper snapshot exercised for real (${dm.reason})`);
    return;
  }
  t.diagnostic(
    `the device-mapper snapshot itself was NOT exercised: this kernel has no device-mapper (${dm.reason}); the base and CoW loop devices, the CoW file and the table were made for real`,
  );
  const err = await disks.create('cl-dm1', base).then(
    () => assert.fail('creating a snapshot device cannot succeed without device-mapper'),
    (e: Error) => e,
  );
  assert.match(
    err.message,
    /device-mapper is not available in this kernel, so the snapshot device wrenn-cl-dm1 cannot be created/,
  );
  assert.match(err.message, /\/dev\/mapper\/control/, "dmsetup's own words name the missing control device");
  // The table in the command names the real loop devices and the base's real size in sectors.
  const m = /--table 0 (\d+) snapshot (\/dev\/loop\d+) (\/dev\/loop\d+) P 8/.exec(err.message);
  assert.ok(m, `the failed command shows the table: ${err.message}`);
  assert.equal(Number(m[1]), (await stat(base)).size / 512, 'origin length = the base image in sectors');
  assert.notEqual(m[2], m[3], 'origin and CoW are two devices');
  const now = await listLoops();
  for (const devName of [m[2], m[3]]) {
    const d = now.find((x) => x.name === devName);
    assert.ok(!d?.backFile.startsWith(dir), `${devName} was detached again`);
  }
  assert.deepEqual(await loopsUnder(dir), [], 'no loop device of ours left');
  assert.ok(!existsSync(join(dir, 'disks/cl-dm1')), 'no CoW file or record left');
  assert.deepEqual(await disks.bases.entries(), [], 'the base refcount is back to nothing');
  await disks.release('cl-dm1'); // releasing what is not there is fine
});

test('flattening a block device into a sparse file (the snapshot-template copy of a device-mapper disk), on a real loop device', {
  skip,
}, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'rootfs.ext4');
  await makeBaseImage(base);
  const dev = await attachLoop(base, true);
  const flat = join(dir, 'flat.ext4');
  await flattenDisk(dev, flat);
  await detachLoop(dev);
  assert.equal(await fileSha(flat), await fileSha(base), 'every byte of the device');
  assert.ok(await isSparse(flat), 'zero blocks became holes');
  assert.equal((await stat(flat)).mode & 0o777, 0o644);
  await assert.rejects(flattenDisk(join(dir, 'nope'), join(dir, 'x')), /does not exist/);
});

test('stale cleanup at agent start: loop devices and disks of capsules no longer known are removed, known ones kept', {
  skip,
}, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'images/minimal/rootfs.ext4');
  await mkdir(join(dir, 'images/minimal'), { recursive: true });
  await makeBaseImage(base, 16);
  const disks = await createCowDisks({ dataDir: dir, kind: 'sparse-copy' });
  // What an agent killed halfway through device-mapper disks leaves: base loop devices in the
  // registry, a CoW file attached to a loop device, and an unregistered read-only base device.
  const keepLoop = await disks.bases.acquire(base, 'cl-keep');
  await disks.bases.acquire(base, 'cl-gone');
  await mkdir(join(dir, 'disks/cl-gone'), { recursive: true });
  const cow = join(dir, 'disks/cl-gone/cow');
  const fh = await open(cow, 'w');
  await fh.truncate(cowBytes(16 * MiB));
  await fh.close();
  const cowLoop = await attachLoop(cow, false);
  await writeFile(
    join(dir, 'disks/cl-gone/disk.json'),
    JSON.stringify({ id: 'cl-gone', kind: 'device-mapper', base, path: '', file: cow, cowLoop }),
  );
  const orphan = await attachLoop(base, true); // attached, never registered (a crash in between)
  // Not ours: a namespace capsule's disk image in the same data directory (mounted with -o loop).
  const nsImage = join(dir, 'sandboxes/cl-ns/disk.img');
  await mkdir(join(dir, 'sandboxes/cl-ns'), { recursive: true });
  await writeFile(nsImage, Buffer.alloc(MiB));
  const nsLoop = await attachLoop(nsImage, false);
  await disks.create('cl-copy', base); // a fallback disk of a capsule gone too
  const kept = await createCowDisks({ dataDir: dir, kind: 'sparse-copy' });
  await kept.create('cl-keep', base);

  const report = await (await createCowDisks({ dataDir: dir })).cleanupStale(new Set(['cl-keep']));
  t.diagnostic(`cleanupStale: ${JSON.stringify(report)}`);
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.disks.sort(), ['cl-copy', 'cl-gone']);
  const left = await listLoops();
  assert.ok(!left.some((d) => d.name === cowLoop), 'the CoW loop device of the gone capsule is detached');
  assert.ok(!left.some((d) => d.name === orphan), 'the unregistered base loop device is detached');
  assert.ok(
    left.some((d) => d.name === keepLoop && d.backFile === base),
    "the known capsule's base device stays",
  );
  assert.deepEqual(
    (await disks.bases.entries()).map((e) => e.users),
    [['cl-keep']],
  );
  assert.deepEqual(
    (await readdir(join(dir, 'disks'))).filter((n) => n.startsWith('cl-')),
    ['cl-keep'],
  );

  // Nobody known any more: everything of ours goes.
  await disks.cleanupStale(new Set());
  assert.deepEqual(
    await loopsUnder(dir),
    [nsLoop],
    "no loop device of ours left; the namespace capsule's disk is not touched",
  );
  await detachLoop(nsLoop);
  assert.deepEqual(await disks.bases.entries(), []);
  assert.deepEqual(
    (await readdir(join(dir, 'disks'))).filter((n) => n.startsWith('cl-')),
    [],
  );
});

test('ensure before a resume: a device-mapper disk whose devices a reboot removed is rebuilt over its CoW file (here up to the missing device-mapper, the CoW file kept); copies are checked', {
  skip,
}, async (t) => {
  const dm = await detectDeviceMapper();
  const dir = await tempDir(t);
  const base = join(dir, 'images/minimal/rootfs.ext4');
  await mkdir(join(dir, 'images/minimal'), { recursive: true });
  await makeBaseImage(base, 16);
  const disks = await createCowDisks({ dataDir: dir, kind: 'sparse-copy' }); // records carry their own kind
  const id = 'cl-reboot';
  if (dm.usable) {
    // A host with device-mapper: a real disk, written to, its devices removed as by a reboot.
    const dmDisks = await createCowDisks({ dataDir: dir, kind: 'device-mapper' });
    const made = await dmDisks.create(id, base);
    const data = randomBytes(4096);
    const w = await open(made.path, 'r+');
    await w.write(data, 0, 4096, MiB);
    await w.sync();
    await w.close();
    assert.equal((await runTool('dmsetup', ['remove', '--noudevsync', `wrenn-${id}`])).code, 0);
    for (const dev of await loopsUnder(dir)) await detachLoop(dev);
    const disk = await disks.ensure(id);
    const r = await open(disk?.path ?? '', 'r');
    const back = Buffer.alloc(4096);
    await r.read(back, 0, 4096, MiB);
    await r.close();
    assert.deepEqual(back, data, 'rebuilt over the kept CoW file: the write is still there');
    await disk?.release();
    assert.deepEqual(await loopsUnder(dir), []);
  } else {
    // What a reboot leaves of a device-mapper disk: its record (with loop numbers that mean
    // nothing any more) and its CoW file holding the capsule's writes.
    const cow = join(dir, `disks/${id}/cow`);
    await mkdir(join(dir, `disks/${id}`), { recursive: true });
    const fh = await open(cow, 'w');
    await fh.truncate(cowBytes(16 * MiB));
    await fh.write(randomBytes(4096), 0, 4096, 0); // the capsule's data: must survive a failed rebuild
    await fh.close();
    const record = {
      id,
      kind: 'device-mapper',
      base,
      baseIno: (await stat(base)).ino,
      path: `/dev/mapper/wrenn-${id}`,
      file: cow,
      baseLoop: '/dev/loop250',
      cowLoop: '/dev/loop251',
    };
    await writeFile(join(dir, `disks/${id}/disk.json`), JSON.stringify(record));
    const cowSha = await fileSha(cow);
    t.diagnostic(
      `the snapshot device was NOT rebuilt: this kernel has no device-mapper (${dm.reason}); the loop devices under it were attached for real and detached again`,
    );
    const err = await disks.ensure(id).then(
      () => assert.fail('rebuilding a snapshot device cannot succeed without device-mapper'),
      (e: Error) => e,
    );
    assert.match(err.message, /device-mapper is not available in this kernel/);
    const m = /--table 0 (\d+) snapshot (\/dev\/loop\d+) (\/dev\/loop\d+) P 8/.exec(err.message);
    assert.ok(m, `the failed command shows the table: ${err.message}`);
    assert.ok(m[2] !== '/dev/loop250' && m[3] !== '/dev/loop251', 'fresh loop devices, not the stale numbers');
    assert.equal(await fileSha(cow), cowSha, "the CoW file (the capsule's writes) is untouched");
    assert.ok(existsSync(join(dir, `disks/${id}/disk.json`)), 'the record stays, for a later attempt or release');
    assert.deepEqual(await loopsUnder(dir), [], 'no loop device left attached');
    assert.deepEqual(await disks.bases.entries(), []);
    // A base image rebuilt since: the capsule's chunks would land on a different image.
    await makeBaseImage(`${base}.new`, 16);
    await rename(`${base}.new`, base);
    await assert.rejects(disks.ensure(id), /was rebuilt after capsule cl-reboot's disk was made/);
  }
  await disks.release(id);
  assert.ok(!existsSync(join(dir, `disks/${id}`)));
  // Copies: present -> returned as they are; missing -> a clear error.
  const copy = await disks.create('cl-copy', base);
  assert.equal((await disks.ensure('cl-copy'))?.path, copy.path);
  await rm(copy.path);
  await assert.rejects(disks.ensure('cl-copy'), /the disk of capsule cl-copy is gone/);
  await copy.release();
  assert.equal(await disks.ensure('cl-none'), undefined, 'no record: nothing to ensure');
});
