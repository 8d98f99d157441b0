// An upgrade that changes a base template's recipe, seen by real namespace capsules: a capsule
// hibernated on the old build resumes on it, a running one keeps it and its snapshot stacks on it,
// new capsules get the new build, and the old layer goes only once nothing uses it. Needs root;
// every capsule, cgroup and directory is removed even when an assertion fails.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { minimalRecipe, type TemplateRecipe, TemplateStore } from '../src/rootfs/index.js';
import { execInCapsule, type NamespaceRuntime } from '../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../src/runtimes/runtime.js';
import { makeEnv, rand, spec } from './namespace-fixtures.js';

const env = makeEnv();
const handles = new Set<RuntimeHandle>();
const imagesDir = join(env.dataDir, 'images-upgrade');

after(async () => {
  const rt = env.runtime();
  for (const h of handles) await rt.destroy(h).catch((err) => console.error('destroy', h.id, err));
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, [], `left behind after the suite: ${left.join(', ')}`);
});

/** `minimal` with a version file: release `version` of the recipe. */
function mini(version: string): TemplateRecipe {
  return {
    description: `minimal, ${version}`,
    inputs: { version },
    async build(root, onProgress) {
      await minimalRecipe.build(root, onProgress);
      mkdirSync(join(root, 'etc'), { recursive: true });
      writeFileSync(join(root, 'etc/mini-version'), `${version}\n`);
    },
  };
}

async function start(rt: NamespaceRuntime, template = 'mini'): Promise<RuntimeHandle> {
  const h = await rt.create(spec(`cl-t${rand()}`, template));
  handles.add(h);
  return h;
}

async function sh(h: RuntimeHandle, script: string): Promise<string> {
  const r = await execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

test('after a recipe change: hibernated and running capsules keep the old build, new ones get the new one', async () => {
  const v1 = new TemplateStore({ imagesDir, recipes: { mini: mini('v1') } });
  const before = env.runtime({ templates: v1 });
  const sleeper = await start(before);
  await sh(sleeper, 'echo slept > /root/note');
  await before.pause(sleeper, 'hibernate');
  const runner = await start(before);
  await sh(runner, 'echo ran > /root/note');

  // The agent restarts with the new release: same data dir, the recipe changed.
  const v2 = new TemplateStore({ imagesDir, recipes: { mini: mini('v2') } });
  const rt = env.runtime({ templates: v2 });
  const fresh = await start(rt);
  assert.equal(await sh(fresh, 'cat /etc/mini-version'), 'v2\n', 'a new capsule gets the rebuilt template');
  assert.deepEqual((await v2.get('mini'))?.layers, [`mini.v${v2.recipeVersion('mini')}`]);

  const woken = await rt.resume(sleeper);
  handles.add(woken);
  assert.equal(await sh(woken, 'cat /etc/mini-version /root/note'), 'v1\nslept\n', 'resumed on its own build');
  assert.equal(await sh(runner, 'cat /etc/mini-version /root/note'), 'v1\nran\n');

  // A snapshot of the capsule started before the upgrade stacks on the build it ran on.
  const snap = `snap-${rand()}`;
  await rt.snapshot(runner, snap);
  assert.deepEqual((await v2.get(snap))?.layers, [snap, 'mini']);
  const fromSnap = await start(rt, snap);
  assert.equal(await sh(fromSnap, 'cat /etc/mini-version /root/note'), 'v1\nran\n');

  // The old layer is in use (a template stacks on it): not even a candidate for removal.
  const oldLayer = join(v2.imagesDir, 'mini', 'rootfs');
  assert.deepEqual(await v2.unusedLayers(), []);
  for (const h of [fromSnap, woken, runner, fresh]) {
    await rt.destroy(h);
    handles.delete(h);
  }
  handles.delete(sleeper); // the same capsule as `woken`
  await v2.deleteTemplate(snap);
  // Now only a capsule record could hold it: the agent asks (inUse) before removing.
  assert.deepEqual(await v2.unusedLayers(), [oldLayer]);
  assert.deepEqual(await v2.removeUnusedLayers((d) => d === oldLayer), []);
  assert.deepEqual(await v2.removeUnusedLayers(() => false), [oldLayer]);
  const after2 = await start(rt);
  assert.equal(await sh(after2, 'cat /etc/mini-version'), 'v2\n');
  await rt.destroy(after2);
  handles.delete(after2);
});
