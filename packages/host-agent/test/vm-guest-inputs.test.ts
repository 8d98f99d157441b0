// The VM disk's guest-code fingerprint: stable for the same inputs, different when the init
// script, the envd bundle or a binary changes (a stale disk is then rebuilt).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { guestInputsFingerprint } from '../src/vm/images/guest-inputs.js';

test('guest inputs fingerprint follows the init script, the envd bundle and the binaries', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-guest-inputs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'bundle');
  await mkdir(join(bundle, 'node_modules/x'), { recursive: true });
  await writeFile(join(bundle, 'envd.mjs'), 'console.log(1)');
  await writeFile(join(bundle, 'node_modules/x/addon.node'), Buffer.alloc(100));
  const busybox = join(dir, 'busybox');
  const node = join(dir, 'node');
  await writeFile(busybox, 'bb');
  await writeFile(node, 'node');
  const inputs = { initScript: Buffer.from('#!/bin/sh\n'), busybox, nodePath: node, envdBundleDir: bundle };
  const base = await guestInputsFingerprint(inputs);
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(await guestInputsFingerprint(inputs), base, 'same inputs, same fingerprint');
  assert.notEqual(
    await guestInputsFingerprint({ ...inputs, initScript: Buffer.from('#!/bin/sh\n# v2\n') }),
    base,
    'init script',
  );
  await writeFile(join(bundle, 'envd.mjs'), 'console.log(2)');
  const afterBundle = await guestInputsFingerprint(inputs);
  assert.notEqual(afterBundle, base, 'envd bundle content');
  await writeFile(join(bundle, 'node_modules/x/addon.node'), Buffer.alloc(101));
  const afterAddon = await guestInputsFingerprint(inputs);
  assert.notEqual(afterAddon, afterBundle, 'a native module beside the bundle');
  await utimes(node, new Date(), new Date(Date.now() + 5000));
  assert.notEqual(await guestInputsFingerprint(inputs), afterAddon, 'the node binary');
});
