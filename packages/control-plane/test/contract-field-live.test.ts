// A field added through the contract, end to end: default_user on POST /v1/capsules (the schema in
// @wrenn/protocol, its rule in capsuleRequestProblem) reaches envd, so a command that names no user
// runs as it; without it the template's default ('user') applies, and a name the contract refuses
// is a 400 before any capsule exists. Real capsules of a live `wrenn up` (network slot 15, which
// the native test page and template builds also use: test files run one at a time).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Live, startLive } from '../src/testing/live-up.js';
import { client } from './native-helpers.js';

let live: Live;
before(async () => {
  live = await startLive(15, 'contract-field');
});
after(async () => {
  await live?.close();
});

async function whoamiIn(body: Record<string, unknown>): Promise<string> {
  const call = client(live.url, live.apiKey);
  const c = await call('POST', '/v1/capsules', { template: 'minimal', ...body });
  assert.equal(c.status, 201, c.text);
  try {
    const r = await call('POST', `/v1/capsules/${c.body.id}/exec`, { cmd: 'id -un', timeout_sec: 20 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.exit_code, 0, r.text);
    return r.body.stdout.trim();
  } finally {
    assert.equal((await call('DELETE', `/v1/capsules/${c.body.id}`)).status, 204);
  }
}

test('default_user: commands that name no user run as it; the default stays the template user', async () => {
  assert.equal(await whoamiIn({ default_user: 'root' }), 'root');
  assert.equal(await whoamiIn({}), 'user');
});

test('default_user: a name outside the contract is refused before any capsule is made', async () => {
  const call = client(live.url, live.apiKey);
  const before = (await call('GET', '/v1/capsules')).body.capsules.length;
  for (const bad of ['no such user', '-rf', 'x'.repeat(33)]) {
    const r = await call('POST', '/v1/capsules', { default_user: bad });
    assert.equal(r.status, 400, `${bad}: ${r.text}`);
    assert.match(r.body.error.message, /default_user/);
  }
  assert.equal((await call('GET', '/v1/capsules')).body.capsules.length, before);
});
