// Garbage collection of the image cache (oci/image-gc.ts) against Debian's docker-registry on a
// loopback port: an image template and its layers stay while a running capsule, a paused capsule
// or a template made from a capsule of it uses them, and go (layers shared with a kept image
// stay) once nothing does; a create from an image while passes run never starts on a removed
// template; and over a size budget the oldest-used unreferenced image goes first.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { PauseMode } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { ImageGc } from '../src/oci/image-gc.js';
import { ensureImageTemplate } from '../src/oci/index.js';
import { TemplateStore } from '../src/rootfs/template-store.js';
import { pushMuslImage } from '../src/testing/oci.js';
import { imageAgent, registrySkip } from './image-agent.js';

const skip = registrySkip;
const images: Record<string, string> = {};
const fx = imageAgent(async (reg) => {
  // Five images sharing the musl root layer, each with a top layer of its own.
  for (const n of ['run', 'paused', 'snap', 'loose', 'race']) {
    await pushMuslImage(reg, `gc/${n}`, 'v1', [{ name: `${n}.txt`, content: `${n}\n` }]);
    images[n] = `${reg.host}/gc/${n}:v1`;
  }
});
const agent = () => fx.agent;
const { capsuleOf, sh } = fx;
const ensure = async (image: string) => (await fx.ensure(image)).result;

const layerNames = () => readdirSync(join(fx.dataDir, 'oci', 'layers')).sort();
const templateExists = (name: string) => existsSync(join(fx.dataDir, 'images', name, 'manifest.json'));

test('prune keeps what a running capsule, a paused capsule and a template from a capsule use; removes the rest', {
  skip,
  timeout: 300_000,
}, async () => {
  const a = agent().client;
  const run = await ensure(images.run ?? '');
  const paused = await ensure(images.paused ?? '');
  const snap = await ensure(images.snap ?? '');
  const loose = await ensure(images.loose ?? '');
  const name = (r: typeof run) => r.template?.name ?? '';
  // 1 shared root layer + 4 top layers.
  assert.equal(layerNames().length, 5);

  const running = await capsuleOf(name(run));
  const pausedId = await capsuleOf(name(paused));
  await a.pauseCapsule({ id: pausedId, mode: PauseMode.FREEZE });
  const snapSource = await capsuleOf(name(snap));
  assert.deepEqual(await sh(snapSource, 'echo kept > /kept.txt'), { code: 0, out: '', err: '' });
  await a.createSnapshot({ capsuleId: snapSource, name: 'gc-snap' });
  await a.destroyCapsule({ id: snapSource });

  const first = await a.pruneImages({ olderThanSec: 0n });
  assert.deepEqual(first.removedTemplates, [name(loose)]);
  assert.equal(first.removedLayers.length, 1, `removed ${first.removedLayers.join(', ')}`);
  assert.ok(first.freedBytes > 0n);
  assert.equal(first.keptLayers, 4);
  assert.ok(!templateExists(name(loose)));
  for (const r of [run, paused, snap]) assert.ok(templateExists(name(r)), `${name(r)} was removed`);
  assert.equal(layerNames().length, 4);

  // Everything kept still works: the running capsule, the paused one resumed, the snapshot.
  assert.deepEqual(await sh(running, 'cat /run.txt /app/hello.txt'), {
    code: 0,
    out: 'run\nhi from the image\n',
    err: '',
  });
  await a.resumeCapsule({ id: pausedId });
  assert.equal((await sh(pausedId, 'cat /paused.txt')).out, 'paused\n');
  const fromSnap = await capsuleOf('gc-snap');
  assert.equal((await sh(fromSnap, 'cat /snap.txt /kept.txt')).out, 'snap\nkept\n');

  // A second pass with nothing changed removes nothing.
  const again = await a.pruneImages({ olderThanSec: 0n });
  assert.deepEqual([again.removedTemplates, again.removedLayers], [[], []]);

  // Once nothing uses them: recently used ones stay under a keep time, all go with 0.
  for (const id of [running, pausedId, fromSnap]) await a.destroyCapsule({ id });
  await a.deleteSnapshot({ name: 'gc-snap' });
  const recent = await a.pruneImages({ olderThanSec: 3600n });
  assert.deepEqual([recent.removedTemplates, recent.removedLayers], [[], []]);
  const all = await a.pruneImages({ olderThanSec: 0n });
  assert.deepEqual(all.removedTemplates.sort(), [name(run), name(paused), name(snap)].sort());
  assert.equal(all.removedLayers.length, 4);
  assert.equal(all.cacheBytes, 0n);
  assert.deepEqual(layerNames(), []);
  assert.deepEqual(readdirSync(join(fx.dataDir, 'oci', 'sizes')), []);

  // The image comes back whole on the next use.
  const back = await ensure(images.run ?? '');
  assert.ok(back.downloadedBytes > 0n);
  const c = await capsuleOf(name(back));
  assert.equal((await sh(c, 'cat /run.txt')).out, 'run\n');
  await a.destroyCapsule({ id: c });
});

test('a create from an image while prune passes run never starts on a removed template', {
  skip,
  timeout: 300_000,
}, async () => {
  const a = agent().client;
  let passes = 0;
  let creating = true;
  const pruning = (async () => {
    while (creating) {
      await a.pruneImages({ olderThanSec: 0n });
      passes++;
    }
  })();
  let retried = 0;
  try {
    for (let i = 0; i < 4; i++) {
      // As the control plane does: pull, create; a template removed in between is pulled again.
      let id = '';
      for (let attempt = 0; !id; attempt++) {
        const r = await ensure(images.race ?? '');
        try {
          id = await capsuleOf(r.template?.name ?? '');
        } catch (err) {
          assert.ok(err instanceof ConnectError && err.code === Code.NotFound && attempt < 5, String(err));
          retried++;
        }
      }
      // Started on a whole template, and its layers stay while it runs.
      await a.pruneImages({ olderThanSec: 0n });
      assert.deepEqual(await sh(id, 'cat /race.txt /app/hello.txt'), {
        code: 0,
        out: 'race\nhi from the image\n',
        err: '',
      });
      await a.destroyCapsule({ id });
    }
  } finally {
    creating = false;
    await pruning;
  }
  assert.ok(passes > 0);
  console.log(
    `# ${passes} prune passes ran during 4 creates; ${retried} creates found the template removed and pulled again`,
  );
});

test('over the size budget, the oldest-used unreferenced image goes first', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-gc-budget-'));
  try {
    const store = new TemplateStore({ imagesDir: join(dir, 'images') });
    const cacheDir = join(dir, 'oci');
    const quiet = { cacheDir, onProgress: () => undefined };
    const old = await ensureImageTemplate(store, images.loose ?? '', quiet);
    const fresh = await ensureImageTemplate(store, images.run ?? '', quiet);
    // The older image was last used an hour ago (its template and its layers).
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(join(dir, 'images', old.template.name), hourAgo, hourAgo);
    for (const d of old.pulled.layerDirs) utimesSync(d, hourAgo, hourAgo);
    const settings = { keepMs: 86_400_000, graceMs: 60_000, budgetBytes: 1, intervalMs: 0 };
    const report = await new ImageGc(store, cacheDir, settings).prune({ inUse: () => [] });
    // Within the grace period the fresh one stays, even over the budget; the shared root layer too.
    assert.deepEqual(report.removedTemplates, [old.template.name]);
    assert.equal(report.removedLayers.length, 1);
    assert.ok(existsSync(join(dir, 'images', fresh.template.name)));
    for (const d of fresh.pulled.layerDirs) assert.ok(existsSync(d), `${d} was removed`);
    // With no budget and the keep time not reached, nothing goes.
    const none = await new ImageGc(store, cacheDir, { ...settings, budgetBytes: 0, graceMs: 0 }).prune({
      inUse: () => [],
    });
    assert.deepEqual([none.removedTemplates, none.removedLayers], [[], []]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
