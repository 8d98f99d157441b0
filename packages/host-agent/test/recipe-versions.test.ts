// Recipe versions of base templates (template-store.ts): a changed recipe is rebuilt beside the
// old layer, an unchanged one is not rebuilt (counted builds, not timings), templates and capsules
// made on the old build keep it, old layers go once nothing uses them, and layer ids from a
// manifest never become paths outside the images dir.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InvalidArgumentError } from '@wrenn/protocol';
import { removeUnusedTemplateLayers } from '../src/local-providers.js';
import { mountsUnder, removeTree, type TemplateRecipe, TemplateStore } from '../src/rootfs/index.js';
import { validateLayerId } from '../src/rootfs/manifest.js';
import { ensureRootfsImage } from '../src/vm/images/index.js';

const tmp = mkdtempSync('/tmp/wrenn-recipe-versions-test-');
after(async () => {
  await removeTree(tmp);
  assert.deepEqual(await mountsUnder(tmp), []);
});

const builds: Record<string, number> = {};

/** A base recipe writing /etc/tiny-version; `inputs` carries the version like a real recipe's packages. */
function tiny(version: string): TemplateRecipe {
  return {
    description: 'a tiny root with a version file',
    inputs: { version },
    async build(root) {
      builds.tiny = (builds.tiny ?? 0) + 1;
      mkdirSync(join(root, 'etc'), { recursive: true });
      writeFileSync(join(root, 'etc/tiny-version'), version);
    },
  };
}

/** Stacked on `tiny` (like code-interpreter-v1 on base): unchanged itself, reads what it is built over. */
const child: TemplateRecipe = {
  description: 'tiny plus a file naming the tiny it was built over',
  parent: 'tiny',
  inputs: { revision: 1 },
  async build(root) {
    builds.child = (builds.child ?? 0) + 1;
    writeFileSync(join(root, 'etc/child-over'), readFileSync(join(root, 'etc/tiny-version')));
  },
};

const store = (imagesDir: string, version: string) =>
  new TemplateStore({ imagesDir, recipes: { tiny: tiny(version), child } });

test('a changed recipe is rebuilt beside the old layer; an unchanged one is not; what was made on the old build keeps it', async () => {
  const imagesDir = join(tmp, 'images-a');
  const upper = join(tmp, 'upper-a');
  mkdirSync(join(upper, 'home'), { recursive: true });
  writeFileSync(join(upper, 'home/note'), 'made on v1');

  // First builds go where they always did: <name>/rootfs, layer id = the name.
  const v1 = store(imagesDir, 'v1');
  const c1 = await v1.ensureTemplate('child', { onProgress() {} });
  assert.deepEqual(builds, { tiny: 1, child: 1 });
  assert.deepEqual(c1.layers, ['child', 'tiny']);
  assert.equal(c1.recipe, v1.recipeVersion('child'));
  assert.match(c1.recipe ?? '', /^[0-9a-f]{16}$/);
  const snap = await v1.snapshotFromCapsule({ name: 'snap-v1', parent: 'tiny', upperDir: upper });
  assert.deepEqual(snap.layers, ['snap-v1', 'tiny']);

  // Unchanged recipes, a new process (a new store: nothing cached in memory): nothing rebuilt.
  const again = store(imagesDir, 'v1');
  const lines: string[] = [];
  assert.deepEqual(await again.ensureTemplate('child', { onProgress: (l) => lines.push(l) }), c1);
  const t1 = await again.ensureTemplate('tiny', { onProgress: (l) => lines.push(l) });
  assert.equal(t1.recipe, v1.recipeVersion('tiny'));
  assert.deepEqual(builds, { tiny: 1, child: 1 });
  assert.equal(lines.length, 0, lines.join('\n'));

  // tiny's recipe changes: tiny is rebuilt as tiny.v<version>, child too (its version holds tiny's).
  const v2 = store(imagesDir, 'v2');
  assert.notEqual(v2.recipeVersion('tiny'), v1.recipeVersion('tiny'));
  assert.notEqual(
    v2.recipeVersion('child'),
    v1.recipeVersion('child'),
    "a parent's change changes the child's version",
  );
  const c2 = await v2.ensureTemplate('child', { onProgress: (l) => lines.push(l) });
  assert.deepEqual(builds, { tiny: 2, child: 2 });
  const tinyId = `tiny.v${v2.recipeVersion('tiny')}`;
  assert.deepEqual(c2.layers, [`child.v${v2.recipeVersion('child')}`, tinyId]);
  assert.ok(
    lines.some((l) => /tiny: the recipe changed since the cached build/.test(l)),
    lines.join('\n'),
  );
  const [childLayer = '', tinyLayer = ''] = await v2.layerDirs(c2);
  assert.equal(tinyLayer, join(imagesDir, tinyId, 'rootfs'));
  assert.equal(readFileSync(join(tinyLayer, 'etc/tiny-version'), 'utf8'), 'v2');
  assert.equal(readFileSync(join(childLayer, 'etc/child-over'), 'utf8'), 'v2', 'child was rebuilt over the new tiny');
  assert.equal((await v2.get('tiny'))?.layers.join(), tinyId);
  // The old layers are where they were: the snapshot made on v1 still stacks on v1.
  const oldSnap = await v2.get('snap-v1');
  assert.deepEqual(oldSnap?.layers, ['snap-v1', 'tiny']);
  const [, oldTiny = ''] = oldSnap ? await v2.layerDirs(oldSnap) : [];
  assert.equal(readFileSync(join(oldTiny, 'etc/tiny-version'), 'utf8'), 'v1');
  // A capsule started on v1 (its lower dirs in its record) snapshotted after the upgrade stacks on v1 too.
  const late = await v2.snapshotFromCapsule({
    name: 'snap-late',
    parent: 'tiny',
    upperDir: upper,
    lowerDirs: [oldTiny],
  });
  assert.deepEqual(late.layers, ['snap-late', 'tiny']);
  const fresh = await v2.snapshotFromCapsule({ name: 'snap-v2', parent: 'tiny', upperDir: upper });
  assert.deepEqual(fresh.layers, ['snap-v2', tinyId]);
  // Listings show templates, not layers.
  assert.deepEqual(
    (await v2.listTemplates()).map((t) => t.name),
    ['child', 'snap-late', 'snap-v1', 'snap-v2', 'tiny'],
  );

  // v2 again, in another store: not rebuilt.
  await store(imagesDir, 'v2').ensureTemplate('child', { onProgress() {} });
  assert.deepEqual(builds, { tiny: 2, child: 2 });

  // Old layers nothing uses: child's first build. tiny's is used by two snapshots.
  const childV1Layer = join(imagesDir, 'child', 'rootfs');
  assert.deepEqual(await v2.unusedLayers(), [childV1Layer]);
  // A capsule still on it (inUse) keeps it.
  assert.deepEqual(await v2.removeUnusedLayers((d) => d === childV1Layer), []);
  assert.ok(existsSync(childV1Layer));
  assert.deepEqual(await v2.removeUnusedLayers(() => false), [childV1Layer]);
  assert.ok(!existsSync(childV1Layer));
  assert.ok(existsSync(join(imagesDir, 'child', 'manifest.json')), "the template's manifest stays");
  // Once the snapshots on v1 go, its layer goes too; the templates still start.
  await v2.deleteTemplate('snap-v1');
  await v2.deleteTemplate('snap-late');
  assert.deepEqual(await v2.removeUnusedLayers(() => false), [join(imagesDir, 'tiny', 'rootfs')]);
  assert.deepEqual((await v2.layerDirs(c2)).length, 2);
  assert.deepEqual(
    readdirSync(imagesDir).filter((n) => n.startsWith('.')),
    [],
  );

  // Back to v1 (a downgrade): built again as tiny.v<v1>; then v2 again reuses the kept tiny.v<v2>.
  const back = store(imagesDir, 'v1');
  assert.deepEqual((await back.ensureTemplate('tiny', { onProgress() {} })).layers, [
    `tiny.v${v1.recipeVersion('tiny')}`,
  ]);
  assert.equal(builds.tiny, 3);
  const reuse: string[] = [];
  const t2 = await store(imagesDir, 'v2').ensureTemplate('tiny', { onProgress: (l) => reuse.push(l) });
  assert.deepEqual(t2.layers, [tinyId]);
  assert.equal(builds.tiny, 3, 'the kept layer of the same version is reused, not built');
  assert.ok(
    reuse.some((l) => l.includes(`reusing layer ${tinyId}`)),
    reuse.join('\n'),
  );
});

test('a build made before recipe versions (no recipe in its manifest) is rebuilt once', async () => {
  const imagesDir = join(tmp, 'images-b');
  const s = store(imagesDir, 'v1');
  await s.ensureTemplate('tiny', { onProgress() {} });
  const file = join(imagesDir, 'tiny', 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8'));
  delete m.recipe;
  writeFileSync(file, JSON.stringify(m));
  const before = builds.tiny ?? 0;
  const rebuilt = await store(imagesDir, 'v1').ensureTemplate('tiny', { onProgress() {} });
  assert.equal(builds.tiny, before + 1);
  assert.deepEqual(rebuilt.layers, [`tiny.v${s.recipeVersion('tiny')}`]);
  await store(imagesDir, 'v1').ensureTemplate('tiny', { onProgress() {} });
  assert.equal(builds.tiny, before + 1);
});

test('a build from before versions is kept when the recipe says its inputs then were the same', async () => {
  const imagesDir = join(tmp, 'images-d');
  const unchanged = (version: string, before: string): TemplateRecipe => ({
    ...tiny(version),
    inputsBeforeVersions: { version: before },
  });
  await store(imagesDir, 'v1').ensureTemplate('tiny', { onProgress() {} });
  const file = join(imagesDir, 'tiny', 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8'));
  delete m.recipe;
  writeFileSync(file, JSON.stringify(m));
  const before = builds.tiny ?? 0;
  const same = new TemplateStore({ imagesDir, recipes: { tiny: unchanged('v1', 'v1') } });
  assert.deepEqual((await same.ensureTemplate('tiny', { onProgress() {} })).layers, ['tiny']);
  assert.equal(builds.tiny, before, 'not rebuilt');
  // The recipe changed since (inputs differ from those before versions): rebuilt.
  const changed = new TemplateStore({ imagesDir, recipes: { tiny: unchanged('v2', 'v1') } });
  assert.deepEqual((await changed.ensureTemplate('tiny', { onProgress() {} })).layers, [
    `tiny.v${changed.recipeVersion('tiny')}`,
  ]);
  assert.equal(builds.tiny, before + 1);
});

test("at agent start an old layer a capsule record names (a paused capsule's lower dir) is kept", async () => {
  const dataDir = join(tmp, 'data-e');
  const imagesDir = join(dataDir, 'images');
  await store(imagesDir, 'v1').ensureTemplate('tiny', { onProgress() {} });
  const v2 = store(imagesDir, 'v2');
  await v2.ensureTemplate('tiny', { onProgress() {} });
  const oldLayer = join(imagesDir, 'tiny', 'rootfs');
  mkdirSync(join(dataDir, 'capsules'), { recursive: true });
  const record = join(dataDir, 'capsules', 'cl-paused.json');
  writeFileSync(record, JSON.stringify({ id: 'cl-paused', state: { layers: [oldLayer], paused: 'hibernate' } }));
  const logged: object[] = [];
  const log = { info: (o: object) => logged.push(o), warn: (o: object) => logged.push(o) };
  assert.deepEqual(await removeUnusedTemplateLayers(v2, dataDir, log), []);
  assert.ok(existsSync(oldLayer));
  // A layer whose path only starts like the recorded one is not held by it.
  writeFileSync(record, JSON.stringify({ id: 'cl-paused', state: { layers: [`${oldLayer}-other`] } }));
  assert.deepEqual(await removeUnusedTemplateLayers(v2, dataDir, log), [oldLayer]);
  assert.deepEqual(logged, [{ layer: oldLayer }]);
  assert.ok(!existsSync(oldLayer));
  const now = await v2.get('tiny');
  assert.ok(now);
  assert.deepEqual(await v2.layerDirs(now), [join(imagesDir, `tiny.v${v2.recipeVersion('tiny')}`, 'rootfs')]);
});

test("a VM root disk is made again when its template's layers change, not otherwise", async () => {
  const imagesDir = join(tmp, 'images-f');
  const lines: string[] = [];
  const disk = async (v: string) => {
    lines.length = 0;
    const out = await ensureRootfsImage({
      store: store(imagesDir, v),
      template: 'tiny',
      freeBytes: 16 << 20,
      onProgress: (l) => lines.push(l),
    });
    return { out, built: lines.some((l) => l.includes('mkfs.ext4')) };
  };
  const cat = (img: string) =>
    execFileSync('debugfs', ['-R', 'cat /etc/tiny-version', img], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  const first = await disk('v1');
  assert.equal(first.built, true);
  assert.equal(cat(first.out), 'v1');
  assert.equal((await disk('v1')).built, false, 'same layers, same guest code: the disk is kept');
  const second = await disk('v2');
  assert.equal(second.built, true, lines.join('\n'));
  assert.ok(
    lines.some((l) => l.includes("the template's layers")),
    lines.join('\n'),
  );
  assert.equal(second.out, first.out);
  assert.equal(cat(second.out), 'v2');
  assert.equal((await disk('v2')).built, false);
});

test('layer ids in a manifest never leave the images dir; new templates cannot take a layer id', async () => {
  for (const bad of [
    '../etc',
    'a/b',
    'tiny..v0123456789abcdef',
    '/abs',
    'Tiny.v0123456789abcdef',
    '',
    'x'.repeat(64),
  ]) {
    assert.throws(() => validateLayerId(bad), /invalid layer id/, bad);
  }
  for (const good of ['tiny', 'base.v0123456789abcdef', 'code-interpreter-v1.vfedcba9876543210']) validateLayerId(good);
  const imagesDir = join(tmp, 'images-c');
  for (const layers of [['../../etc'], ['x', 'tiny/../../'], [42]]) {
    mkdirSync(join(imagesDir, 'hostile'), { recursive: true });
    writeFileSync(
      join(imagesDir, 'hostile', 'manifest.json'),
      JSON.stringify({ name: 'hostile', kind: 'snapshot', parent: null, layers, runtimes: ['namespace'] }),
    );
    const s = store(imagesDir, 'v1');
    await assert.rejects(s.get('hostile'), /layers must be template names or <name>\.v<version>/);
    // A listing skips it rather than failing.
    assert.deepEqual(await s.listTemplates(), []);
  }
  const s = store(imagesDir, 'v1');
  await s.ensureTemplate('tiny', { onProgress() {} });
  const upper = join(tmp, 'upper-c');
  mkdirSync(upper, { recursive: true });
  await assert.rejects(
    s.snapshotFromCapsule({ name: `tiny.v${s.recipeVersion('tiny')}`, parent: 'tiny', upperDir: upper }),
    (e: unknown) => e instanceof InvalidArgumentError && /is reserved/.test(e.message),
  );
  assert.equal(existsSync(join(imagesDir, `tiny.v${s.recipeVersion('tiny')}`)), false);
});
