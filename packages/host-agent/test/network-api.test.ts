// The free-function API over the default manager, as the agent uses it.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  cleanupStaleNetworks,
  createCapsuleNetwork,
  destroyCapsuleNetwork,
  getCapsuleNetwork,
  initNetwork,
  listCapsuleNetworks,
  registerMetadata,
  setInternet,
  startMetadataServer,
  stopMetadataServer,
  unregisterMetadata,
} from '../src/network/index.js';
import { execFileP, freePort, httpGetFrom } from './network-helpers.js';

// Names and pool of this file only (each test file runs in its own process, maybe next to others).
const NAMES = { netnsPrefix: 'wrnu-', ifPrefix: 'wu', chainPrefix: 'WRNU' };

test('free functions: create, list, metadata, internet switch, stale cleanup, destroy', {
  skip: process.getuid?.() === 0 ? false : 'needs root',
}, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'wrenn-net-api-'));
  const m = await initNetwork({ dataDir, pool: '10.224.0.0/28', names: NAMES, metadataPort: await freePort() });
  t.after(async () => {
    await stopMetadataServer();
    await m.removeAll();
    const netns = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) =>
      n.startsWith(NAMES.netnsPrefix),
    );
    const links = (await readdir('/sys/class/net')).filter((n) => /^wu\d+$/.test(n));
    const rules = (await execFileP('iptables-save', [])).stdout.split('\n').filter((l) => l.includes('WRNU'));
    rules.push(...(await execFileP('ipset', ['list', '-n'])).stdout.split('\n').filter((l) => l.startsWith('WRNU')));
    await rm(dataDir, { recursive: true, force: true });
    assert.deepEqual([...netns, ...links, ...rules], [], 'nothing of this test is left');
  });
  await startMetadataServer();
  await assert.rejects(initNetwork({ dataDir: '/elsewhere' }), /already configured with dataDir/);

  const a = await createCapsuleNetwork({ id: 'cl-api-a', internet: false, dataDir });
  const b = await createCapsuleNetwork({ id: 'cl-api-b', internet: true, dataDir, rateMbit: 10 });
  assert.deepEqual(
    (await listCapsuleNetworks()).map((n) => n.id),
    ['cl-api-a', 'cl-api-b'],
  );
  assert.equal(b.rateMbit, 10);

  await registerMetadata('cl-api-a', { WRENN_TEMPLATE_ID: 'tpl-a' });
  assert.deepEqual(await httpGetFrom(a.netnsName, 'http://169.254.169.254/WRENN_TEMPLATE_ID'), {
    status: 200,
    body: 'tpl-a',
  });
  await unregisterMetadata('cl-api-a');
  assert.equal((await httpGetFrom(a.netnsName, 'http://169.254.169.254/WRENN_TEMPLATE_ID')).status, 404);
  assert.deepEqual(await httpGetFrom(a.netnsName, 'http://169.254.169.254/WRENN_SANDBOX_ID'), {
    status: 200,
    body: 'cl-api-a',
  });
  await assert.rejects(registerMetadata('cl-api-a', { 'a/b': 'x' }), /metadata key "a\/b" is invalid/);

  assert.equal((await setInternet('cl-api-a', true)).internet, true);
  assert.equal((await getCapsuleNetwork('cl-api-a'))?.internet, true);

  const res = await cleanupStaleNetworks(new Set(['cl-api-b']));
  assert.deepEqual(res.removedIds, ['cl-api-a']);
  assert.equal(await getCapsuleNetwork('cl-api-a'), undefined);
  await destroyCapsuleNetwork('cl-api-b');
  await destroyCapsuleNetwork('cl-api-b');
  assert.deepEqual(await listCapsuleNetworks(), []);
});
