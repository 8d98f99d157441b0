// The template store on a real file system: the minimal recipe, build locking, atomic builds,
// ownership shifting, snapshots, deletion rules and the apt-sources mirror lookup.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDeb822, parseOneLine } from '../src/rootfs/debian-mirror.js';
import {
  findDebianMirror,
  HOST_ID_BASE,
  minimalRecipe,
  mountsUnder,
  removeTree,
  type TemplateRecipe,
  TemplateStore,
  validateTemplateName,
} from '../src/rootfs/index.js';

const tmp = mkdtempSync('/tmp/wrenn-rootfs-test-');
after(async () => {
  await removeTree(tmp);
  assert.deepEqual(await mountsUnder(tmp), []);
});

test('minimal builds from busybox-static: applets, accounts, modes, ownership shifted into the capsule range', async () => {
  const store = new TemplateStore({ imagesDir: join(tmp, 'images-a') });
  const progress: string[] = [];
  const t0 = performance.now();
  const m = await store.ensureTemplate('minimal', { onProgress: (l) => progress.push(l) });
  console.log(`# minimal built in ${(performance.now() - t0).toFixed(0)} ms, ${m.size} bytes`);
  assert.equal(m.name, 'minimal');
  assert.equal(m.kind, 'base');
  assert.equal(m.parent, null);
  assert.deepEqual(m.layers, ['minimal']);
  assert.deepEqual(m.runtimes, ['namespace']);
  assert.ok(Date.parse(m.created_at) > 0);
  assert.ok(m.size > 1_000_000, `size ${m.size} should count busybox`);
  assert.ok(progress.some((l) => l.includes('building')));
  const root = join(store.imagesDir, 'minimal/rootfs');
  assert.equal(readlinkSync(join(root, 'bin/sh')), '/bin/busybox');
  assert.ok(existsSync(join(root, 'usr/bin/wget')) || existsSync(join(root, 'bin/wget')));
  assert.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^user:x:1000:1000:[^:]*:\/home\/user:/m);
  assert.match(readFileSync(join(root, 'etc/group'), 'utf8'), /^user:x:1000:/m);
  assert.equal(statSync(join(root, 'tmp')).mode & 0o7777, 0o1777);
  assert.equal(statSync(join(root, 'root')).uid, HOST_ID_BASE);
  assert.equal(statSync(join(root, 'home/user')).uid, HOST_ID_BASE + 1000);
  assert.equal(lstatSync(join(root, 'bin/sh')).uid, HOST_ID_BASE, 'symlinks are shifted too (lchown)');
  assert.equal(statSync(join(root, 'bin/busybox')).mode & 0o111, 0o111);
  // Cached: the second call does not build.
  progress.length = 0;
  const again = await store.ensureTemplate('minimal', { onProgress: (l) => progress.push(l) });
  assert.deepEqual(again, m);
  assert.deepEqual(progress, []);
  assert.deepEqual(
    (await store.listTemplates()).map((t) => t.name),
    ['minimal'],
  );
});

test('concurrent ensureTemplate calls build once (in-process and across processes via the lock file)', async () => {
  const imagesDir = join(tmp, 'images-b');
  let builds = 0;
  const counting: TemplateRecipe = {
    description: 'minimal, counted',
    async build(rootfs, onProgress) {
      builds++;
      await minimalRecipe.build(rootfs, onProgress);
    },
  };
  const a = new TemplateStore({ imagesDir, recipes: { minimal: counting } });
  const b = new TemplateStore({ imagesDir, recipes: { minimal: counting } });
  const [m1, m2, m3] = await Promise.all([
    a.ensureTemplate('minimal', { onProgress() {} }),
    a.ensureTemplate('minimal', { onProgress() {} }),
    b.ensureTemplate('minimal', { onProgress() {} }),
  ]);
  assert.equal(builds, 1);
  assert.deepEqual(m1, m2);
  assert.deepEqual(m1, m3);

  // Another process holds the build lock: we wait for it, then build (once) ourselves.
  const lockPath = join(imagesDir, '.other.lock');
  const lockModule = fileURLToPath(new URL('../src/rootfs/build-lock.js', import.meta.url));
  const holder = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { acquireLock } = await import(${JSON.stringify(lockModule)}); const l = await acquireLock(${JSON.stringify(lockPath)}); console.log('held'); setTimeout(async () => { await l.release(); }, 800);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((res) => holder.stdout.once('data', () => res()));
  const waits: string[] = [];
  const c = new TemplateStore({ imagesDir, recipes: { other: counting } });
  const t0 = Date.now();
  await c.ensureTemplate('other', { onProgress: (l) => waits.push(l) });
  assert.ok(Date.now() - t0 >= 500, 'the build did not wait for the lock holder');
  assert.ok(
    waits.some((l) => l.includes(`pid ${holder.pid}`)),
    `no waiting message: ${waits.join(' | ')}`,
  );
  assert.equal(builds, 2);
  assert.equal(existsSync(lockPath), false);
});

test('a stale lock from a dead builder is taken over', async () => {
  const imagesDir = join(tmp, 'images-c');
  mkdirSync(imagesDir, { recursive: true });
  // A pid that cannot be alive: beyond pid_max.
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  writeFileSync(join(imagesDir, '.minimal.lock'), String(pidMax + 1));
  const store = new TemplateStore({ imagesDir });
  const m = await store.ensureTemplate('minimal', { onProgress() {} });
  assert.equal(m.name, 'minimal');
});

test('a failed build leaves nothing under the final name, no temp dir, no lock and no mounts', async () => {
  const imagesDir = join(tmp, 'images-d');
  const broken: TemplateRecipe = {
    description: 'fails half way, with a mount inside (like an interrupted debootstrap)',
    async build(rootfs) {
      mkdirSync(join(rootfs, 'proc'), { recursive: true });
      writeFileSync(join(rootfs, 'half-made'), 'x');
      execFileSync('mount', ['-t', 'tmpfs', 'wrenn-test', join(rootfs, 'proc')]);
      writeFileSync(join(rootfs, 'proc/inside-mount'), 'x');
      throw new Error('network went away');
    },
  };
  const store = new TemplateStore({ imagesDir, recipes: { broken } });
  await assert.rejects(
    store.ensureTemplate('broken', { onProgress() {} }),
    /building template "broken" failed: network went away/,
  );
  assert.deepEqual(readdirSync(imagesDir), []);
  assert.deepEqual(await mountsUnder(imagesDir), []);
  await assert.rejects(store.ensureTemplate('nope'), /template "nope" does not exist; available: broken/);
});

test('snapshotFromCapsule stacks a copied upper layer (whiteouts, opaque dirs, ownership) over its parent', async () => {
  const store = new TemplateStore({ imagesDir: join(tmp, 'images-a') });
  const upper = join(tmp, 'upper');
  mkdirSync(join(upper, 'home/user'), { recursive: true });
  writeFileSync(join(upper, 'home/user/file'), 'hello');
  execFileSync('chown', ['-R', `${HOST_ID_BASE + 1000}:${HOST_ID_BASE + 1000}`, join(upper, 'home/user')]);
  execFileSync('mknod', [join(upper, 'deleted-thing'), 'c', '0', '0']); // an overlay whiteout
  mkdirSync(join(upper, 'etc'));
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'etc')]);
  const m = await store.snapshotFromCapsule({ name: 'snap-one', parent: 'minimal', upperDir: upper });
  assert.deepEqual(m.layers, ['snap-one', 'minimal']);
  assert.equal(m.kind, 'snapshot');
  assert.equal(m.parent, 'minimal');
  const layer = join(store.imagesDir, 'snap-one/rootfs');
  assert.equal(readFileSync(join(layer, 'home/user/file'), 'utf8'), 'hello');
  assert.equal(statSync(join(layer, 'home/user/file')).uid, HOST_ID_BASE + 1000);
  assert.ok(lstatSync(join(layer, 'deleted-thing')).isCharacterDevice());
  assert.match(
    execFileSync('getfattr', ['-n', 'trusted.overlay.opaque', '--only-values', join(layer, 'etc')], {
      encoding: 'utf8',
    }),
    /^y/,
  );
  assert.equal(statSync(layer).uid, HOST_ID_BASE);
  assert.deepEqual(await store.layerDirs(m), [layer, join(store.imagesDir, 'minimal/rootfs')]);
  await assert.rejects(
    store.snapshotFromCapsule({ name: 'snap-one', parent: 'minimal', upperDir: upper }),
    /already exists/,
  );
  await assert.rejects(
    store.snapshotFromCapsule({ name: 'snap-x', parent: 'absent', upperDir: upper }),
    /parent template "absent" does not exist/,
  );

  const m2 = await store.snapshotFromCapsule({ name: 'snap-two', parent: 'snap-one', upperDir: upper });
  assert.deepEqual(m2.layers, ['snap-two', 'snap-one', 'minimal']);
  await assert.rejects(store.deleteTemplate('snap-one'), /used by "snap-two"/);
  await assert.rejects(store.deleteTemplate('minimal'), /base template/);
  await assert.rejects(store.deleteTemplate('ghost'), /does not exist/);
  await store.deleteTemplate('snap-two');
  await store.deleteTemplate('snap-one');
  assert.deepEqual(
    (await store.listTemplates()).map((t) => t.name),
    ['minimal'],
  );
  assert.deepEqual(
    readdirSync(store.imagesDir).filter((n) => n.startsWith('.')),
    [],
  );
});

test('template names are validated', () => {
  for (const bad of ['', '../etc', 'a/b', 'UPPER', '-x', '.hidden', 'a'.repeat(64)]) {
    assert.throws(() => validateTemplateName(bad), /invalid template name/, bad);
  }
  for (const good of ['minimal', 'base', 'my-app.v2', 'x_1']) validateTemplateName(good);
});

test('the Debian mirror comes from the apt sources (deb822 first, then one-line), never a constant', async () => {
  const etc = join(tmp, 'apt');
  mkdirSync(join(etc, 'sources.list.d'), { recursive: true });
  assert.deepEqual(
    parseDeb822(
      'Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\n',
    ),
    [
      { uri: 'http://mirror.test/debian', suites: ['bookworm', 'bookworm-updates'] },
      { uri: 'http://mirror.test/debian-security', suites: ['bookworm-security'] },
    ],
  );
  assert.deepEqual(
    parseOneLine(
      '# comment\ndeb [arch=amd64] http://one.test/debian bookworm main\ndeb-src http://x.test/ bookworm main\n',
    ),
    [{ uri: 'http://one.test/debian', suites: ['bookworm'] }],
  );
  await assert.rejects(findDebianMirror('bookworm', etc), /no apt source for the Debian suite "bookworm"/);
  writeFileSync(join(etc, 'sources.list'), 'deb http://one.test/debian bookworm main\n');
  assert.equal(await findDebianMirror('bookworm', etc), 'http://one.test/debian');
  writeFileSync(
    join(etc, 'sources.list.d/debian.sources'),
    'Types: deb\nURIs: http://two.test/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://two.test/debian\nSuites: bookworm\n',
  );
  assert.equal(await findDebianMirror('bookworm', etc), 'http://two.test/debian');
  // This host's own configuration names one.
  assert.match(await findDebianMirror('bookworm'), /^https?:\/\//);
});

test('cleanupLeftovers removes crashed builds and half-deleted templates, nothing else', async () => {
  const imagesDir = join(tmp, 'images-e');
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  for (const n of [`.build-x-${pidMax + 1}`, '.delete-y-1-2', `.build-live-${process.pid}`, 'keep']) {
    mkdirSync(join(imagesDir, n, 'rootfs'), { recursive: true });
  }
  const store = new TemplateStore({ imagesDir });
  assert.deepEqual((await store.cleanupLeftovers()).sort(), [`.build-x-${pidMax + 1}`, '.delete-y-1-2']);
  assert.deepEqual(readdirSync(imagesDir).sort(), [`.build-live-${process.pid}`, 'keep']);
});
