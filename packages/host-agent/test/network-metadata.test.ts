// The metadata server's HTTP shape, on loopback (the capsule path through 169.254.169.254 is
// tested in network-capsule.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMetadataHttpServer } from '../src/network/metadata-server.js';

test('metadata server: JSON of all keys, text per key, key list, token, unknown callers refused', async (t) => {
  const values: Record<string, Record<string, string>> = {
    '127.0.0.1': { WRENN_SANDBOX_ID: 'cl-abc', WRENN_TEMPLATE_ID: 'base' },
  };
  const srv = await startMetadataHttpServer({
    port: 0,
    host: '127.0.0.1',
    lookup: (a) => values[a.replace(/^::ffff:/, '')],
  });
  t.after(() => srv.close());
  const base = `http://127.0.0.1:${srv.port}`;

  const json = await fetch(`${base}/`, { headers: { accept: 'application/json' } });
  assert.equal(json.headers.get('content-type'), 'application/json');
  assert.deepEqual(await json.json(), { WRENN_SANDBOX_ID: 'cl-abc', WRENN_TEMPLATE_ID: 'base' });
  assert.equal(await (await fetch(`${base}/`)).text(), 'WRENN_SANDBOX_ID\nWRENN_TEMPLATE_ID\n');
  assert.equal(await (await fetch(`${base}/WRENN_SANDBOX_ID`)).text(), 'cl-abc');
  assert.equal(await (await fetch(`${base}/latest/WRENN_TEMPLATE_ID`)).text(), 'base');
  assert.equal((await fetch(`${base}/latest/NOPE`)).status, 404);
  assert.equal((await fetch(`${base}/toString`)).status, 404, 'no prototype keys');
  const token = await fetch(`${base}/latest/api/token`, {
    method: 'PUT',
    headers: { 'x-metadata-token-ttl-seconds': '60' },
  });
  assert.equal(token.status, 200);
  assert.ok((await token.text()).length >= 16);
  assert.equal((await fetch(`${base}/WRENN_SANDBOX_ID`, { method: 'POST' })).status, 405);

  delete values['127.0.0.1'];
  const refused = await fetch(`${base}/WRENN_SANDBOX_ID`);
  assert.equal(refused.status, 403);
});

test('metadata server: a taken port gives a clear error', async (t) => {
  const a = await startMetadataHttpServer({ port: 0, host: '127.0.0.1', lookup: () => undefined });
  t.after(() => a.close());
  await assert.rejects(
    startMetadataHttpServer({ port: a.port, host: '127.0.0.1', lookup: () => undefined }),
    /port \d+ is in use \(set WRENN_METADATA_PORT/,
  );
});
