// Volumes end to end through the official e2b SDK against `wrenn up` (namespace runtime): the
// Volume API and its content API, data that outlives the capsule that wrote it, one volume shared
// read-write by two capsules, the size limit (ENOSPC inside, a neighbour unaffected), and the
// hostile probes: a capsule's root cannot leave its volume (symlinks, '..', mount calls), content
// API paths cannot escape (symlinks a capsule planted), and another team can neither see, read nor
// mount the volume. QEMU capsules and volumes: volumes-qemu.test.ts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sandbox, Volume, VolumeError, VolumeNotFoundError, VolumePathNotFoundError } from 'e2b';
import { createApiKey } from '../../src/auth/api-keys.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { type DbKind, type LiveSystem, SHARED_IMAGES, startLive, stopPostgres } from '../e2b-live.js';

// Test files run one at a time: the e2b base suite's slot is free while this one runs.
const SLOT = 9;

function defineVolumeSuite(db: DbKind): void {
  describe(`volumes through the e2b SDK [${db}]`, () => {
    let sys: LiveSystem;
    let keyB: string;
    const sandboxes: Sandbox[] = [];
    const opts = (apiKey?: string) => ({ ...sys.sdk(apiKey), timeoutMs: 300_000 });
    /** The volume content API lives on the same server (the SDK would use api.<domain>). */
    const content = () => ({ apiUrl: sys.url });
    const sandbox = async (mounts: Record<string, string>, apiKey?: string) => {
      const s = await Sandbox.create('minimal', { ...opts(apiKey), volumeMounts: mounts });
      sandboxes.push(s);
      return s;
    };
    const root = { user: 'root' as const };
    /** POST /volumes with Wrenn's sizeMB (the SDK's Volume.create has no size). */
    const createSized = async (name: string, sizeMB: number) => {
      const r = await fetch(`${sys.url}/volumes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': sys.adminKey },
        body: JSON.stringify({ name, sizeMB }),
      });
      assert.equal(r.status, 201, await r.clone().text());
      return Volume.connect(((await r.json()) as { volumeID: string }).volumeID, opts());
    };

    before(async () => {
      sys = await startLive({ db, slot: SLOT, imagesDir: SHARED_IMAGES });
      const d = sys.cp.ctx.database.db;
      keyB = (await createApiKey(d, { teamId: (await createTeam(d, { name: 'volume-outsider' })).id, name: 'b' })).key;
    });
    after(async () => {
      try {
        for (const s of sandboxes) await s.kill().catch(() => undefined);
        await sys?.close();
      } finally {
        if (db === 'postgres') await stopPostgres();
      }
    });

    it('creates, lists, gets and uses the content API without a capsule', async () => {
      const vol = await Volume.create('data-a', opts());
      assert.match(vol.volumeId, /^vol-/);
      assert.ok(vol.token.length > 20);
      assert.ok((await Volume.list(opts())).some((v) => v.volumeId === vol.volumeId && v.name === 'data-a'));
      const info = await Volume.getInfo(vol.volumeId, opts());
      assert.equal(info.name, 'data-a');
      await assert.rejects(Volume.create('data-a', opts()), /already exists/);

      const dir = await vol.makeDir('/docs/deep', { ...content(), force: true });
      assert.equal(dir.type, 'directory');
      const w = await vol.writeFile('/docs/deep/hello.txt', 'hello volume', { ...content(), mode: 0o640 });
      assert.equal(w.size, 12);
      assert.equal(w.mode, 0o640);
      assert.equal(w.uid, 0);
      assert.equal(await vol.readFile('/docs/deep/hello.txt', content()), 'hello volume');
      const names = (await vol.list('/docs', { ...content(), depth: 2 })).map((e) => e.path).sort();
      assert.deepEqual(names, ['/docs/deep', '/docs/deep/hello.txt']);
      assert.equal(await vol.exists('/docs/nope', content()), false);
      const m = await vol.updateMetadata('/docs/deep/hello.txt', { uid: 1000, gid: 1000, mode: 0o600 }, content());
      assert.deepEqual([m.uid, m.gid, m.mode], [1000, 1000, 0o600]);
      await vol.remove('/docs', content());
      await assert.rejects(vol.getInfo('/docs', content()), VolumePathNotFoundError);
    });

    it('keeps data written by one capsule for a later one', async () => {
      const vol = await Volume.connect((await Volume.list(opts())).find((v) => v.name === 'data-a')!.volumeId, opts());
      const a = await sandbox({ '/mnt/data': 'data-a' });
      await a.commands.run('echo from-root > /mnt/data/root.txt', root);
      // The default user writes too (the volume's top is writable by every user inside).
      await a.commands.run('echo from-user > /mnt/data/user.txt');
      const uid = Number((await a.commands.run('id -u')).stdout.trim());
      const info = await a.getInfo();
      assert.deepEqual(info.volumeMounts, [{ name: 'data-a', path: '/mnt/data' }]);
      await a.kill();
      // Through the content API, with the owners the capsule saw.
      assert.equal((await vol.getInfo('/user.txt', content())).uid, uid);
      assert.equal((await vol.getInfo('/root.txt', content())).uid, 0);
      const b = await sandbox({ '/home/user/work': 'data-a' });
      const r = await b.commands.run('cat /home/user/work/root.txt /home/user/work/user.txt');
      assert.equal(r.stdout, 'from-root\nfrom-user\n');
      const owners = await b.commands.run('stat -c %u /home/user/work/root.txt /home/user/work/user.txt');
      assert.equal(owners.stdout, `0\n${uid}\n`);
      await b.kill();
    });

    it('shares one volume read-write between two running capsules', async () => {
      await Volume.create('shared', opts());
      const [x, y] = await Promise.all([sandbox({ '/shared': 'shared' }), sandbox({ '/srv/s': 'shared' })]);
      // Listings carry each sandbox's mounts too.
      const listed = await Sandbox.list(opts()).nextItems();
      assert.deepEqual(listed.find((i) => i.sandboxId === y.sandboxId)?.volumeMounts, [
        { name: 'shared', path: '/srv/s' },
      ]);
      await x.commands.run('echo one > /shared/x.txt');
      assert.equal((await y.commands.run('cat /srv/s/x.txt')).stdout, 'one\n');
      await y.commands.run('echo two >> /srv/s/x.txt', root);
      assert.equal((await x.commands.run('cat /shared/x.txt')).stdout, 'one\ntwo\n');
      // In use: deleting it is refused with 409.
      const shared = (await Volume.list(opts())).find((v) => v.name === 'shared')!;
      await assert.rejects(Volume.destroy(shared.volumeId, opts()), /409/);
      await Promise.all([x.kill(), y.kill()]);
      assert.equal(await Volume.destroy(shared.volumeId, opts()), true);
      await assert.rejects(Volume.getInfo(shared.volumeId, opts()), VolumeNotFoundError);
      assert.equal(existsSync(join(sys.dataDir, 'volumes', shared.volumeId)), false, 'the image is gone from the host');
    });

    it('keeps the mount across a memory pause and a hibernation; forks share the source volume', async () => {
      await Volume.create('lifecycle', opts());
      const s = await sandbox({ '/mnt/l': 'lifecycle' });
      await s.commands.run('echo before > /mnt/l/a.txt');
      await s.pause();
      const back = await Sandbox.connect(s.sandboxId, opts());
      assert.equal((await back.commands.run('cat /mnt/l/a.txt')).stdout, 'before\n');
      // Disk-only pause: resuming cold-boots the capsule, and the volume is bound again.
      await back.pause({ keepMemory: false });
      const cold = await Sandbox.connect(s.sandboxId, opts());
      await cold.commands.run('echo after >> /mnt/l/a.txt');
      assert.equal((await cold.commands.run('cat /mnt/l/a.txt')).stdout, 'before\nafter\n');
      const forks = await cold.fork();
      const f = forks[0];
      assert.ok(f instanceof Sandbox, String(f));
      sandboxes.push(f);
      assert.deepEqual((await f.getInfo()).volumeMounts, [{ name: 'lifecycle', path: '/mnt/l' }]);
      await f.commands.run('echo from-fork > /mnt/l/f.txt');
      assert.equal((await cold.commands.run('cat /mnt/l/f.txt')).stdout, 'from-fork\n');
      await cold.kill();
      // The fork still mounts it: deleting is refused until it is gone too.
      const v = (await Volume.list(opts())).find((x) => x.name === 'lifecycle')!;
      await assert.rejects(Volume.destroy(v.volumeId, opts()), /409/);
      await f.kill();
      assert.equal(await Volume.destroy(v.volumeId, opts()), true);
    });

    it('holds the size limit: ENOSPC inside, the neighbour and the capsule disk unaffected', async () => {
      const small = await createSized('small', 16);
      await createSized('neighbour', 16);
      const s = await sandbox({ '/mnt/small': 'small' });
      const n = await sandbox({ '/mnt/n': 'neighbour' });
      const fill = await s.commands.run('dd if=/dev/zero of=/mnt/small/fill bs=1M count=64 2>&1; echo rc=$?', root);
      assert.match(fill.stdout, /No space left on device/);
      assert.match(fill.stdout, /rc=1/);
      const df = await s.commands.run('df -k /mnt/small | tail -1', root);
      const sizeKb = Number(df.stdout.trim().split(/\s+/)[1]);
      assert.ok(sizeKb > 8_000 && sizeKb <= 16_384, `df shows the volume's own size: ${df.stdout}`);
      // The capsule's own disk and the neighbour's volume still take writes.
      assert.equal((await s.commands.run('echo ok > /tmp/t && cat /tmp/t', root)).stdout, 'ok\n');
      assert.equal(
        (await n.commands.run('dd if=/dev/zero of=/mnt/n/f bs=1M count=4 2>/dev/null && echo ok')).stdout,
        'ok\n',
      );
      // The content API gets the same limit: 507 (the e2b SDK's VolumeError with the status).
      await assert.rejects(small.writeFile('/more', new ArrayBuffer(4 * 1024 * 1024), content()), /507|full/);
    });

    it('hostile: a capsule cannot reach outside its volume, and planted symlinks do not lead the content API out', async () => {
      const vol = await Volume.create('hostile', opts());
      await Volume.create('bystander', opts());
      const s = await sandbox({ '/mnt/h': 'hostile' });
      const neighbour = await sandbox({ '/mnt/b': 'bystander' });
      await neighbour.commands.run('echo mine > /mnt/b/own.txt');
      const hostHostname = readFileSync('/etc/hostname', 'utf8');
      // Inside: '..' is the capsule's own /mnt; mount calls are refused to root inside.
      const probe = await s.commands.run(
        [
          'ln -s / /mnt/h/escape',
          'ln -s /etc/hostname /mnt/h/hn',
          'ln -s ../../../../../../etc /mnt/h/up',
          'mkdir -p /mnt/h/d && ln -s /proc/1/root /mnt/h/d/pr',
          'ls /mnt/h/.. | tr "\\n" " "; echo',
          'mount --bind / /mnt/h/d 2>&1 && echo MOUNTED',
          'umount /mnt/h 2>&1 && echo UNMOUNTED',
          'mount -t tmpfs x /mnt/h/d 2>&1 && echo MOUNTED2',
          'echo done',
        ].join('; '),
        { ...root },
      );
      assert.doesNotMatch(probe.stdout, /MOUNTED|UNMOUNTED/);
      assert.match(probe.stdout, /^h \n/m, `.. of the volume is the capsule's /mnt: ${probe.stdout}`);
      assert.match(probe.stdout, /done/);
      // The content API resolves every symlink inside the volume: none reaches the host.
      await assert.rejects(vol.readFile('/hn', content()), VolumePathNotFoundError);
      await assert.rejects(vol.readFile('/escape/etc/hostname', content()), VolumePathNotFoundError);
      await assert.rejects(vol.readFile('/up/hostname', content()), VolumePathNotFoundError);
      await assert.rejects(vol.readFile('/d/pr/etc/hostname', content()), VolumeError);
      const top = (await vol.list('/escape', content())).map((e) => e.name).sort();
      assert.deepEqual(top, ['d', 'escape', 'hn', 'up'], 'the planted / is the volume root');
      await assert.rejects(vol.readFile('/../../../etc/hostname', content()), /400|'\.\.'/);
      // Writing through a planted symlink is refused, and the host file is untouched.
      await assert.rejects(vol.writeFile('/hn', 'owned', content()), VolumeError);
      // A write through the planted '/' lands in the volume's own root (it is what '/' means there).
      await vol.writeFile('/escape/etc/hostname', 'owned', { ...content(), force: true });
      assert.equal(await vol.readFile('/etc/hostname', content()), 'owned');
      assert.equal(readFileSync('/etc/hostname', 'utf8'), hostHostname);
      // Removing the symlinks removes only them.
      await vol.remove('/escape', content());
      await vol.remove('/d', content());
      assert.ok(existsSync('/etc/hostname'));
      // The capsule keeps working, and so does a neighbour capsule, whose volume it never saw.
      assert.equal((await s.commands.run('echo alive')).stdout, 'alive\n');
      assert.equal((await neighbour.commands.run('cat /mnt/b/own.txt')).stdout, 'mine\n');
      assert.equal((await s.commands.run('ls /mnt')).stdout, 'h\n');
    });

    it('hostile: mount paths are checked, and a symlink in the template on the way is refused', async () => {
      await Volume.create('paths', opts());
      for (const bad of ['/proc/x', '/etc', '/opt/wrenn/envd', '/', '/a/../b', 'rel/path']) {
        await assert.rejects(sandbox({ [bad]: 'paths' }), /400|path/, bad);
      }
      // minimal's /sbin holds busybox's applet symlinks; /usr/sbin/x crosses none, /bin/sh/x crosses one.
      await assert.rejects(sandbox({ '/bin/sh/x': 'paths' }), /400.*symlink in the template/);
    });

    it('hostile: another team can neither see, read, delete nor mount the volume', async () => {
      const vol = await Volume.connect((await Volume.list(opts())).find((v) => v.name === 'data-a')!.volumeId, opts());
      assert.equal((await Volume.list(opts(keyB))).length, 0);
      await assert.rejects(Volume.getInfo(vol.volumeId, opts(keyB)), VolumeNotFoundError);
      assert.equal(await Volume.destroy(vol.volumeId, opts(keyB)), false);
      await assert.rejects(sandbox({ '/mnt/x': 'data-a' }, keyB), /not found/);
      // Team B's own volume token does not open team A's volume.
      const mine = await Volume.create('b-own', opts(keyB));
      const forged = new Volume(vol.volumeId, 'data-a', mine.token);
      await assert.rejects(forged.list('/', content()), /Unauthorized|401/);
      const noToken = new Volume(vol.volumeId, 'data-a', '');
      await assert.rejects(noToken.list('/', content()), /Unauthorized|401/);
      // Team A's volume is still whole.
      assert.ok((await vol.list('/', content())).length > 0);
    });
  });
}

defineVolumeSuite('sqlite');
defineVolumeSuite('postgres');
