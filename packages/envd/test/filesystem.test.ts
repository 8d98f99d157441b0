// filesystem.Filesystem end to end: a real envd on loopback, real files in temp dirs, every RPC
// over Connect JSON on HTTP/1.1 and Connect binary on h2c.

import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Client, Code } from '@connectrpc/connect';
import { setAttributeSync } from '@napi-rs/xattr';
import { EventType, type Filesystem, type FilesystemEvent, FileType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { type After, createTestUser, eventually, expectCode, tempDir } from './filesystem-fixtures.js';
import { startTestEnvd, type TestEnvd, userHeader } from './helpers.js';

const transports = [
  { label: 'Connect JSON over HTTP/1.1', http2: false, binary: false },
  { label: 'Connect binary over h2c', http2: true, binary: true },
];

async function envdFor(t: After, opts: { http2: boolean; binary: boolean }): Promise<TestEnvd> {
  const envd = await startTestEnvd({ portForwarding: false, ...opts });
  t.after(() => envd.close());
  return envd;
}

type Fs = Client<typeof Filesystem>;

/** Starts WatchDir and collects its filesystem events until stop(). */
async function startWatch(
  fs: Fs,
  req: { path: string; recursive?: boolean; includeEntry?: boolean },
  headers?: Record<string, string>,
) {
  const abort = new AbortController();
  const stream = fs.watchDir(req, { signal: abort.signal, headers })[Symbol.asyncIterator]();
  const first = await stream.next();
  assert.equal(first.value?.event.case, 'start', 'the first message of WatchDir is the start event');
  const events: FilesystemEvent[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const r = await stream.next();
        if (r.done) return;
        if (r.value.event.case === 'filesystem') events.push(r.value.event.value);
      }
    } catch {
      // aborted
    }
  })();
  return {
    events,
    has: (type: EventType, name: string) => events.some((e) => e.type === type && e.name === name),
    async stop() {
      abort.abort();
      await done;
    },
  };
}

for (const tr of transports) {
  describe(`filesystem service (${tr.label})`, () => {
    test('Stat returns full entry info for files, directories and symlinks', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      const file = join(dir, 'hello.txt');
      writeFileSync(file, 'hello world');
      chmodSync(file, 0o640);
      setAttributeSync(file, 'user.e2b.color', 'blue');
      setAttributeSync(file, 'user.other', 'ignored');

      const { entry } = await envd.filesystem.stat({ path: file });
      assert.ok(entry);
      assert.equal(entry.name, 'hello.txt');
      assert.equal(entry.type, FileType.FILE);
      assert.equal(entry.path, file);
      assert.equal(entry.size, 11n);
      assert.equal(entry.mode, 0o640);
      assert.equal(entry.permissions, '-rw-r-----');
      assert.equal(entry.owner, 'root');
      assert.equal(entry.group, 'root');
      assert.equal(entry.symlinkTarget, undefined);
      assert.deepEqual(entry.metadata, { color: 'blue' });
      const mtimeMs = Number(entry.modifiedTime?.seconds) * 1000 + Math.floor((entry.modifiedTime?.nanos ?? 0) / 1e6);
      assert.ok(Math.abs(mtimeMs - statSync(file).mtimeMs) < 2, 'modified time matches the file');

      const sub = join(dir, 'sub');
      mkdirSync(sub, { mode: 0o755 });
      chmodSync(sub, 0o1755);
      const d = (await envd.filesystem.stat({ path: sub })).entry;
      assert.equal(d?.type, FileType.DIRECTORY);
      assert.equal(d?.permissions, 'dtrwxr-xr-x');
      assert.equal(d?.mode, 0o755);

      // Symlinks report their target's type and permission bits, the resolved target, and 'L'.
      const link = join(dir, 'link');
      symlinkSync('hello.txt', link);
      const l = (await envd.filesystem.stat({ path: link })).entry;
      assert.equal(l?.type, FileType.FILE);
      assert.equal(l?.symlinkTarget, realpathSync(file));
      assert.equal(l?.permissions, 'Lrwxrwxrwx');
      assert.equal(l?.mode, 0o640);
      assert.equal(l?.size, BigInt(lstatSync(link).size));
      const broken = join(dir, 'broken');
      symlinkSync('nowhere', broken);
      const b = (await envd.filesystem.stat({ path: broken })).entry;
      assert.equal(b?.type, FileType.UNSPECIFIED);

      await expectCode(envd.filesystem.stat({ path: join(dir, 'missing') }), Code.NotFound, 'missing');
      await expectCode(envd.filesystem.stat({ path: '~root/x' }), Code.InvalidArgument, 'cannot expand');
    });

    test('MakeDir creates parents, reports already_exists, refuses files', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      const nested = join(dir, 'a', 'b', 'c');
      const { entry } = await envd.filesystem.makeDir({ path: nested });
      assert.equal(entry?.type, FileType.DIRECTORY);
      assert.equal(entry?.path, nested);
      assert.equal(entry?.name, 'c');
      assert.ok(statSync(nested).isDirectory());
      await expectCode(envd.filesystem.makeDir({ path: nested }), Code.AlreadyExists, 'already exists');
      writeFileSync(join(dir, 'f'), '');
      await expectCode(envd.filesystem.makeDir({ path: join(dir, 'f') }), Code.InvalidArgument, 'not a directory');
      await expectCode(envd.filesystem.makeDir({ path: join(dir, 'f', 'x') }), Code.InvalidArgument);
    });

    test('Move renames, creates destination parents, not_found for a missing source', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      writeFileSync(join(dir, 'src.txt'), 'data');
      const dest = join(dir, 'x', 'y', 'dst.txt');
      const { entry } = await envd.filesystem.move({ source: join(dir, 'src.txt'), destination: dest });
      assert.equal(entry?.path, dest);
      assert.equal(entry?.name, 'dst.txt');
      assert.equal(entry?.size, 4n);
      assert.equal(readFileSync(dest, 'utf8'), 'data');
      assert.equal(existsSync(join(dir, 'src.txt')), false);
      await expectCode(
        envd.filesystem.move({ source: join(dir, 'nope'), destination: join(dir, 'z') }),
        Code.NotFound,
        'source file not found',
      );
    });

    test('ListDir lists by depth in name order with paths under the requested path', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      mkdirSync(join(dir, 'b', 'deep', 'deeper'), { recursive: true });
      writeFileSync(join(dir, 'a.txt'), 'a');
      writeFileSync(join(dir, 'b', 'c.txt'), 'c');
      writeFileSync(join(dir, 'b', 'deep', 'd.txt'), 'd');

      const names = async (depth: number, path = dir) =>
        (await envd.filesystem.listDir({ path, depth })).entries.map((e) => e.path.slice(path.length + 1));
      assert.deepEqual(await names(1), ['a.txt', 'b']);
      assert.deepEqual(await names(0), ['a.txt', 'b'], 'depth 0 means 1');
      assert.deepEqual(await names(2), ['a.txt', 'b', 'b/c.txt', 'b/deep']);
      assert.deepEqual(await names(10), ['a.txt', 'b', 'b/c.txt', 'b/deep', 'b/deep/d.txt', 'b/deep/deeper']);
      const entries = (await envd.filesystem.listDir({ path: dir, depth: 1 })).entries;
      assert.equal(entries[0]?.type, FileType.FILE);
      assert.equal(entries[0]?.size, 1n);
      assert.equal(entries[1]?.type, FileType.DIRECTORY);

      // A symlinked directory lists its target's entries under the link's path.
      const link = join(dir, 'link');
      symlinkSync(join(dir, 'b'), link);
      assert.deepEqual(await names(1, link), ['c.txt', 'deep']);

      await expectCode(envd.filesystem.listDir({ path: join(dir, 'missing'), depth: 1 }), Code.NotFound);
      symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'));
      symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'));
      await expectCode(
        envd.filesystem.listDir({ path: join(dir, 'loop-a'), depth: 1 }),
        Code.FailedPrecondition,
        'cyclic',
      );
      await expectCode(
        envd.filesystem.listDir({ path: join(dir, 'a.txt'), depth: 1 }),
        Code.InvalidArgument,
        'not a directory',
      );
    });

    test('Remove deletes files and whole trees; a missing path is fine', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      mkdirSync(join(dir, 'tree', 'sub'), { recursive: true });
      writeFileSync(join(dir, 'tree', 'sub', 'f'), 'x');
      writeFileSync(join(dir, 'file'), 'x');
      await envd.filesystem.remove({ path: join(dir, 'file') });
      await envd.filesystem.remove({ path: join(dir, 'tree') });
      assert.equal(existsSync(join(dir, 'file')), false);
      assert.equal(existsSync(join(dir, 'tree')), false);
      await envd.filesystem.remove({ path: join(dir, 'never-existed') });
    });

    test('relative and ~ paths resolve in the requesting user home; new entries are owned by that user', async (t) => {
      const envd = await envdFor(t, tr);
      const user = createTestUser(t);
      const as = { headers: userHeader(user.name) };
      const { entry } = await envd.filesystem.makeDir({ path: 'proj/src' }, as);
      assert.equal(entry?.path, join(user.home, 'proj', 'src'));
      assert.equal(entry?.owner, user.name);
      assert.equal(entry?.group, user.name);
      assert.equal(statSync(join(user.home, 'proj')).uid, user.uid, 'created parents belong to the user too');
      const tilde = await envd.filesystem.stat({ path: '~/proj' }, as);
      assert.equal(tilde.entry?.path, join(user.home, 'proj'));
      const home = await envd.filesystem.stat({ path: '~' }, as);
      assert.equal(home.entry?.path, user.home);
      writeFileSync(join(user.home, 'proj', 'x.txt'), 'x');
      const moved = await envd.filesystem.move({ source: 'proj/x.txt', destination: 'out/y.txt' }, as);
      assert.equal(moved.entry?.path, join(user.home, 'out', 'y.txt'));
      assert.equal(statSync(join(user.home, 'out')).uid, user.uid);
      const listed = await envd.filesystem.listDir({ path: '', depth: 1 }, as);
      assert.ok(
        listed.entries.some((e) => e.path === join(user.home, 'proj')),
        'an empty path lists the home',
      );

      // Root's relative paths resolve in /root.
      const rootStat = await envd.filesystem.stat({ path: '~' });
      assert.equal(rootStat.entry?.path, '/root');
      await expectCode(
        envd.filesystem.stat({ path: 'x' }, { headers: userHeader('no-such-user-xyz') }),
        Code.InvalidArgument,
        'does not exist',
      );
    });

    test('a non-root user gets permission_denied where it may not write', async (t) => {
      const envd = await envdFor(t, tr);
      const user = createTestUser(t);
      const as = { headers: userHeader(user.name) };
      const dir = tempDir(t);
      const locked = join(dir, 'locked');
      mkdirSync(locked, { mode: 0o755 });
      writeFileSync(join(locked, 'f'), 'x');
      await expectCode(envd.filesystem.makeDir({ path: join(locked, 'new') }, as), Code.PermissionDenied, user.name);
      await expectCode(envd.filesystem.makeDir({ path: '/root/wrenn-denied-test' }, as), Code.PermissionDenied);
      assert.equal(existsSync('/root/wrenn-denied-test'), false);
      await expectCode(envd.filesystem.remove({ path: join(locked, 'f') }, as), Code.PermissionDenied);
      assert.ok(existsSync(join(locked, 'f')));
      await expectCode(
        envd.filesystem.move({ source: join(locked, 'f'), destination: join(user.home, 'f') }, as),
        Code.PermissionDenied,
      );
      // A tree of the user's own holding a root-owned, non-empty directory cannot be removed whole.
      const mine = join(user.home, 'mixed');
      mkdirSync(join(mine, 'roots'), { recursive: true });
      writeFileSync(join(mine, 'roots', 'r.txt'), 'r');
      chownSync(mine, user.uid, user.gid);
      await expectCode(envd.filesystem.remove({ path: mine }, as), Code.PermissionDenied);
      assert.ok(existsSync(join(mine, 'roots', 'r.txt')));
      chownSync(join(mine, 'roots'), user.uid, user.gid);
      await envd.filesystem.remove({ path: mine }, as);
      assert.equal(existsSync(mine), false);
      // Once the directory is the user's, the same calls succeed.
      chownSync(locked, user.uid, user.gid);
      await envd.filesystem.makeDir({ path: join(locked, 'new') }, as);
      await envd.filesystem.remove({ path: join(locked, 'f') }, as);
      assert.equal(existsSync(join(locked, 'f')), false);
    });

    test('WatchDir streams create/write/remove/rename/chmod with relative names', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      writeFileSync(join(dir, 'existing.txt'), 'x');
      const w = await startWatch(envd.filesystem, { path: dir, includeEntry: true });
      t.after(() => w.stop());
      writeFileSync(join(dir, 'new.txt'), 'hello');
      await eventually(() => assert.ok(w.has(EventType.CREATE, 'new.txt'), 'create'));
      await eventually(() => assert.ok(w.has(EventType.WRITE, 'new.txt'), 'write'));
      const created = w.events.find((e) => e.type === EventType.CREATE && e.name === 'new.txt');
      assert.equal(created?.entry?.path, join(dir, 'new.txt'), 'include_entry attaches the entry');
      chmodSync(join(dir, 'existing.txt'), 0o600);
      await eventually(() => assert.ok(w.has(EventType.CHMOD, 'existing.txt'), 'chmod'));
      renameSync(join(dir, 'new.txt'), join(dir, 'renamed.txt'));
      await eventually(() =>
        assert.ok(w.has(EventType.RENAME, 'new.txt') && w.has(EventType.CREATE, 'renamed.txt'), 'rename'),
      );
      const renamed = w.events.find((e) => e.type === EventType.RENAME);
      assert.equal(renamed?.entry, undefined, 'rename events carry no entry');
      rmSync(join(dir, 'renamed.txt'));
      await eventually(() => assert.ok(w.has(EventType.REMOVE, 'renamed.txt'), 'remove'));
      // Not recursive: nothing from inside subdirectories.
      mkdirSync(join(dir, 'sub'));
      await eventually(() => assert.ok(w.has(EventType.CREATE, 'sub')));
      writeFileSync(join(dir, 'sub', 'inner.txt'), 'x');
      writeFileSync(join(dir, 'marker'), 'x');
      await eventually(() => assert.ok(w.has(EventType.CREATE, 'marker')));
      assert.ok(!w.events.some((e) => e.name.startsWith('sub/')), 'non-recursive watch reports no nested events');
    });

    test('WatchDir recursive reports nested events, including in new directories', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      mkdirSync(join(dir, 'old', 'deep'), { recursive: true });
      const w = await startWatch(envd.filesystem, { path: dir, recursive: true });
      t.after(() => w.stop());
      writeFileSync(join(dir, 'old', 'deep', 'f.txt'), 'x');
      await eventually(() => assert.ok(w.has(EventType.CREATE, 'old/deep/f.txt')));
      mkdirSync(join(dir, 'n1', 'n2'), { recursive: true });
      await eventually(() => assert.ok(w.has(EventType.CREATE, 'n1') && w.has(EventType.CREATE, 'n1/n2')));
      writeFileSync(join(dir, 'n1', 'n2', 'g.txt'), 'y');
      await eventually(() =>
        assert.ok(w.has(EventType.CREATE, 'n1/n2/g.txt') && w.has(EventType.WRITE, 'n1/n2/g.txt')),
      );
      rmSync(join(dir, 'n1'), { recursive: true });
      await eventually(() => assert.ok(w.has(EventType.REMOVE, 'n1/n2/g.txt') && w.has(EventType.REMOVE, 'n1')));
    });

    test('WatchDir sends keepalives at the Keepalive-Ping-Interval the client asks for', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      const abort = new AbortController();
      t.after(() => abort.abort());
      const kinds: (string | undefined)[] = [];
      for await (const res of envd.filesystem.watchDir(
        { path: dir },
        { signal: abort.signal, headers: { 'keepalive-ping-interval': '1' } },
      )) {
        kinds.push(res.event.case);
        if (kinds.length === 2) break;
      }
      assert.deepEqual(kinds, ['start', 'keepalive']);
    });

    test('WatchDir refuses missing paths and files', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      writeFileSync(join(dir, 'f'), 'x');
      const first = async (path: string) => {
        for await (const _ of envd.filesystem.watchDir({ path })) return;
      };
      await expectCode(first(join(dir, 'missing')), Code.NotFound, 'not found');
      await expectCode(first(join(dir, 'f')), Code.InvalidArgument, 'not a directory');
      await expectCode(envd.filesystem.createWatcher({ path: join(dir, 'missing') }), Code.NotFound);
      await expectCode(envd.filesystem.createWatcher({ path: join(dir, 'f') }), Code.InvalidArgument);
    });

    test('polling watcher queues events until GetWatcherEvents drains them', async (t) => {
      const envd = await envdFor(t, tr);
      const dir = tempDir(t);
      const { watcherId } = await envd.filesystem.createWatcher({ path: dir, recursive: true, includeEntry: true });
      assert.match(watcherId, /^w/);
      mkdirSync(join(dir, 'd'));
      writeFileSync(join(dir, 'd', 'a.txt'), 'a');
      const seen: FilesystemEvent[] = [];
      await eventually(async () => {
        seen.push(...(await envd.filesystem.getWatcherEvents({ watcherId })).events);
        assert.ok(seen.some((e) => e.type === EventType.CREATE && e.name === 'd/a.txt'));
      });
      assert.ok(
        seen.some((e) => e.type === EventType.CREATE && e.name === 'd' && e.entry?.type === FileType.DIRECTORY),
      );
      await new Promise((r) => setTimeout(r, 100));
      const drained = (await envd.filesystem.getWatcherEvents({ watcherId })).events;
      assert.ok(
        !drained.some((e) => e.type === EventType.CREATE && e.name === 'd/a.txt'),
        'events are handed out once',
      );
      await envd.filesystem.removeWatcher({ watcherId });
      await expectCode(envd.filesystem.getWatcherEvents({ watcherId }), Code.NotFound);
      await expectCode(envd.filesystem.removeWatcher({ watcherId }), Code.NotFound);
    });
  });
}
