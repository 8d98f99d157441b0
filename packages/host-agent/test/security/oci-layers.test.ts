// Hostile probe: image layers are attacker-controlled tar files unpacked by root on the host.
// Each layer here tries to write outside the layer directory (`..`, absolute paths, a symlink
// then a write through it, hard links out or through a symlink), plant device nodes, or smuggle
// setuid files owned by ids outside the capsule range. Each is refused or contained, and nothing
// appears outside the layer directory. (Capsules are not involved yet: no capsule starts from an
// image until the builder's `FROM <image>` lands, so no neighbour capsule is exercised here.)
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { unpackLayer } from '../../src/oci/layer-unpack.js';
import { HOST_ID_BASE } from '../../src/rootfs/id-map.js';
import { type TarEntry, tarOf } from '../../src/testing/oci.js';

const scratch = mkdtempSync('/tmp/wrenn-oci-hostile-');
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Unpacks `entries` into <scratch>/<name>/layer; <scratch>/<name>/outside is the escape target. */
async function unpack(name: string, entries: TarEntry[]) {
  const base = join(scratch, name);
  const dest = join(base, 'layer');
  mkdirSync(join(base, 'outside'), { recursive: true });
  mkdirSync(dest);
  const tar = await tarOf(entries);
  const result = await unpackLayer(Readable.from([tar]), dest, `hostile-${name}`).then(
    (stats) => ({ stats, error: undefined }),
    (error: Error) => ({ stats: undefined, error }),
  );
  return { ...result, dest, outside: join(base, 'outside') };
}

test('`..` in a path is refused and writes nothing outside', async () => {
  const r = await unpack('dotdot', [{ name: '../outside/pwned', content: 'x' }]);
  assert.match(String(r.error), /climbs out of the root/);
  assert.deepEqual(readdirSync(r.outside), []);
});

test('an absolute path lands inside the layer', async () => {
  const r = await unpack('absolute', [{ name: '/etc/abs', content: 'inside' }]);
  assert.equal(r.error, undefined);
  assert.equal(existsSync(join(r.dest, 'etc/abs')), true);
  assert.equal(existsSync('/etc/abs'), false);
});

test('a symlink then a write through it is refused or contained', async () => {
  const r = await unpack('symlink-write', [
    { name: 'link', type: 'symlink', linkname: join(scratch, 'symlink-write', 'outside') },
    { name: 'link/pwned', content: 'x' },
  ]);
  assert.match(String(r.error), /goes through a symlink; refused/);
  assert.deepEqual(readdirSync(r.outside), []);
  const r2 = await unpack('symlink-dir', [
    { name: 'up', type: 'symlink', linkname: '../outside' },
    { name: 'up/', type: 'directory' },
    { name: 'up/pwned', content: 'x' },
  ]);
  assert.equal(r2.error, undefined);
  assert.equal(lstatSync(join(r2.dest, 'up')).isDirectory(), true, 'the directory entry replaced the symlink');
  assert.deepEqual(readdirSync(r2.outside), [], 'contained: nothing written through the old symlink');
});

test('a symlink replaced by a file is replaced, never written through', async () => {
  const target = join(scratch, 'symlink-replace', 'outside', 'victim');
  const r = await unpack('symlink-replace', [
    { name: 'victim', type: 'symlink', linkname: target },
    { name: 'victim', content: 'replaced' },
  ]);
  assert.equal(r.error, undefined);
  assert.equal(existsSync(target), false);
  assert.equal(lstatSync(join(r.dest, 'victim')).isFile(), true);
});

test('hard links out of the layer or through a symlink are refused', async () => {
  const r = await unpack('hardlink-out', [{ name: 'passwd', type: 'link', linkname: '../../../../etc/passwd' }]);
  assert.match(String(r.error), /climbs out of the root/);
  const r2 = await unpack('hardlink-symlink', [
    { name: 'etc', type: 'symlink', linkname: '/etc' },
    { name: 'passwd', type: 'link', linkname: 'etc/passwd' },
  ]);
  assert.match(String(r2.error), /goes through a symlink; refused/);
  assert.equal(existsSync(join(r2.dest, 'passwd')), false);
});

test('device nodes and FIFOs are skipped', async () => {
  const r = await unpack('devices', [
    { name: 'dev/', type: 'directory' },
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
    { name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1 },
    { name: 'dev/fifo', type: 'fifo' },
  ]);
  assert.equal(r.error, undefined);
  assert.deepEqual(readdirSync(join(r.dest, 'dev')), []);
  assert.deepEqual(r.stats?.skipped.sort(), ['block-device dev/sda', 'character-device dev/mem', 'fifo dev/fifo']);
});

test('setuid files keep their bit only inside the capsule id range', async () => {
  const r = await unpack('setuid', [
    { name: 'rootsu', content: 'x', mode: 0o4755, uid: 0, gid: 0 },
    { name: 'hostroot', content: 'x', mode: 0o6755, uid: 4_000_000, gid: 4_000_000 },
    { name: 'neg', content: 'x', mode: 0o4755, uid: 70_000, gid: 0 },
  ]);
  assert.equal(r.error, undefined);
  const rootsu = statSync(join(r.dest, 'rootsu'));
  assert.equal(rootsu.uid, HOST_ID_BASE, 'root of the image is the capsule root, never host root');
  assert.equal(rootsu.mode & 0o7777, 0o4755);
  for (const name of ['hostroot', 'neg']) {
    const st: Stats = statSync(join(r.dest, name));
    assert.equal(st.uid, HOST_ID_BASE + 65534, `${name}: out-of-range owner becomes nobody`);
    assert.equal(st.mode & 0o6000, 0, `${name}: setuid/setgid dropped`);
  }
  for (const f of readdirSync(r.dest))
    assert.ok(lstatSync(join(r.dest, f)).uid >= HOST_ID_BASE, `${f} owned by a host id`);
});

test('whiteouts cannot reach outside the layer either', async () => {
  const r = await unpack('whiteout', [{ name: '../outside/.wh.x', content: '' }]);
  assert.match(String(r.error), /climbs out of the root/);
  assert.deepEqual(readdirSync(r.outside), []);
});
