// fsAsUser against the real kernel: calls made as an unprivileged identity get that identity's
// permissions (and its groups'), the pool threads get root's back afterwards, procfs files and
// magic links are refused, RESOLVE_IN_ROOT keeps a lookup under its root, and rm -rf as a user stops
// at what the user may not remove. Uses nobody (65534) and a scratch group id; needs root.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type FsAsUserRequest, native } from '../src/index.js';

const NOBODY = { uid: 65534, gid: 65534, groups: [65534] };
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_DIRECTORY = 0o200000;
const O_PATH = 0o10000000;

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-fsu-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function call(req: FsAsUserRequest) {
  const r = await native().fsAsUser(req);
  if (r.fd !== undefined) closeSync(r.fd);
  return r;
}

test('open as a user gets the kernel check of that user; root keeps its own', async (t) => {
  const dir = scratch(t);
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'root only', { mode: 0o600 });
  assert.equal((await call({ op: 'open', path: secret, flags: O_RDONLY, ...NOBODY })).errno, 13);
  assert.equal((await call({ op: 'open', path: secret, flags: O_RDONLY })).errno, 0);
  // Group permission comes from the groups given, not from the thread's own.
  chmodSync(secret, 0o640);
  chownSync(secret, 0, 54321);
  assert.equal((await call({ op: 'open', path: secret, flags: O_RDONLY, ...NOBODY })).errno, 13);
  assert.equal((await call({ op: 'open', path: secret, flags: O_RDONLY, ...NOBODY, groups: [65534, 54321] })).errno, 0);
  // Created files belong to the identity.
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  chownSync(mine, NOBODY.uid, NOBODY.gid);
  assert.equal(
    (await call({ op: 'open', path: join(mine, 'new'), flags: O_WRONLY | O_CREAT, mode: 0o640, ...NOBODY })).errno,
    0,
  );
  assert.equal(statSync(join(mine, 'new')).uid, NOBODY.uid);
  assert.equal(statSync(join(mine, 'new')).gid, NOBODY.gid);
  assert.equal((await call({ op: 'mkdir', path: join(dir, 'no'), mode: 0o755, ...NOBODY })).errno, 13);
});

test('the pool threads serve root again after many calls as a user', async (t) => {
  const dir = scratch(t);
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'root only', { mode: 0o600 });
  const denied = await Promise.all(
    Array.from({ length: 64 }, () => call({ op: 'stat', path: join('/root', 'x'), ...NOBODY })),
  );
  assert.ok(
    denied.every((r) => r.errno === 13),
    JSON.stringify(denied.map((r) => r.errno)),
  );
  // Node's own fs calls run on the same pool threads: every one must still be root.
  const reads = await Promise.all(Array.from({ length: 64 }, () => readFile(secret, 'utf8')));
  assert.ok(reads.every((s) => s === 'root only'));
});

test('a user never opens procfs files (envd itself) nor magic links', async (t) => {
  assert.equal((await call({ op: 'open', path: '/proc/self/environ', flags: O_RDONLY, ...NOBODY })).errno, 13);
  assert.equal((await call({ op: 'open', path: '/proc/self/status', flags: O_RDONLY, ...NOBODY })).errno, 13);
  assert.equal((await call({ op: 'open', path: '/proc/self', flags: O_RDONLY | O_DIRECTORY, ...NOBODY })).errno, 0);
  const dir = scratch(t);
  writeFileSync(join(dir, 'f'), 'x', { mode: 0o644 });
  const held = await native().fsAsUser({ op: 'open', path: join(dir, 'f'), flags: O_RDONLY });
  t.after(() => closeSync(held.fd as number));
  // A magic link is refused (ELOOP) even for root: RESOLVE_NO_MAGICLINKS.
  assert.equal((await call({ op: 'open', path: `/proc/self/fd/${held.fd}`, flags: O_RDONLY })).errno, 40);
});

test('RESOLVE_IN_ROOT keeps absolute paths and symlinks under the root fd', async (t) => {
  const root = scratch(t);
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'passwd'), 'inside\n');
  symlinkSync('/../../../etc/passwd', join(root, 'escape'));
  const rootFd = await native().fsAsUser({ op: 'open', path: root, flags: O_PATH | O_DIRECTORY });
  t.after(() => closeSync(rootFd.fd as number));
  for (const path of ['/etc/passwd', 'escape', '../../etc/passwd']) {
    const r = await native().fsAsUser({ op: 'open', path, flags: O_RDONLY, dirfd: rootFd.fd, inRoot: true });
    assert.equal(r.errno, 0, path);
    assert.equal(readFileSync(`/proc/self/fd/${r.fd}`, 'utf8'), 'inside\n', path);
    closeSync(r.fd as number);
  }
  await assert.rejects(
    async () => native().fsAsUser({ op: 'open', path: 'x', flags: 0, inRoot: true }),
    /inRoot needs a dirfd/,
  );
});

test('removeTree as a user removes its own tree and stops at a root-owned directory', async (t) => {
  const dir = scratch(t);
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'a', 'b'), { recursive: true });
  writeFileSync(join(tree, 'a', 'b', 'f'), 'x');
  symlinkSync('/etc', join(tree, 'link-to-etc'));
  for (const p of [tree, join(tree, 'a'), join(tree, 'a', 'b'), join(tree, 'a', 'b', 'f')])
    chownSync(p, NOBODY.uid, NOBODY.gid);
  chownSync(dir, NOBODY.uid, NOBODY.gid);
  mkdirSync(join(tree, 'rootdir'));
  writeFileSync(join(tree, 'rootdir', 'r'), 'r');
  assert.equal((await call({ op: 'removeTree', path: tree, ...NOBODY })).errno, 13);
  assert.equal(readFileSync(join(tree, 'rootdir', 'r'), 'utf8'), 'r');
  assert.ok(statSync('/etc/passwd').isFile(), 'the symlink was removed, not followed');
  chownSync(join(tree, 'rootdir'), NOBODY.uid, NOBODY.gid);
  assert.equal((await call({ op: 'removeTree', path: tree, ...NOBODY })).errno, 0);
  assert.equal((await call({ op: 'stat', path: tree })).errno, 2);
  assert.equal((await call({ op: 'removeTree', path: tree, ...NOBODY })).errno, 0, 'a missing tree is no error');
});

test('list and entry report lstat, symlink targets and prefixed xattrs as the user sees them', async (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, 'file'), 'abc');
  symlinkSync(join(dir, 'file'), join(dir, 'link'));
  symlinkSync(join(dir, 'missing'), join(dir, 'dangling'));
  const r = await native().fsAsUser({ op: 'list', path: dir, prefix: 'user.e2b.', ...NOBODY });
  assert.equal(r.errno, 0);
  const byName = new Map((r.entries ?? []).map((e) => [e.name, e]));
  assert.equal(byName.get('file')?.size, 3);
  assert.equal(byName.get('link')?.target, join(dir, 'file'));
  assert.equal(byName.get('link')?.targetStat?.size, 3);
  assert.equal(byName.get('dangling')?.targetStat, undefined);
  assert.equal((await native().fsAsUser({ op: 'list', path: '/root', prefix: '', ...NOBODY })).errno, 13);
});

test('bad requests are type errors, not calls', async () => {
  await assert.rejects(async () => native().fsAsUser({ op: 'nope' } as unknown as FsAsUserRequest), /unknown op/);
  await assert.rejects(async () => native().fsAsUser({ op: 'stat', path: 'a\0b' }), /NUL/);
  await assert.rejects(
    async () => native().fsAsUser({ op: 'stat', path: '/', uid: 1 } as FsAsUserRequest),
    /needs a gid/,
  );
  await assert.rejects(async () => native().fsAsUser({ op: 'stat', path: '/', uid: -1, gid: 0 }), /out of range/);
});
