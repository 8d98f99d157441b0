// The limits both APIs enforce are the capsule contract's (@wrenn/protocol), not a copy: every
// bound is probed on its edge from CAPSULE_LIMITS (the last value accepted, the first refused), on
// the native API and the E2B API, and the OpenAPI document must state the same numbers. A limit
// restated anywhere with another number fails here. No host is registered, so an accepted request
// ends as 503 no_host_available: past validation, before any capsule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CAPSULE_DEFAULTS, CAPSULE_LIMITS, TIMEOUT_ACTIONS } from '@wrenn/protocol';
import { client, newTeamKey, startBareControlPlane } from './native-helpers.js';

const L = CAPSULE_LIMITS;
const keys = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));
/** An env map whose JSON is exactly `bytes` long. */
const envOfBytes = (bytes: number) => ({ A: 'x'.repeat(bytes - JSON.stringify({ A: '' }).length) });
const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `203.0.113.${i}/32`);

/** [what, last accepted, first refused, what the refusal names]; bodies in native JSON. */
const NATIVE_EDGES: Array<[string, Record<string, unknown>, Record<string, unknown>, RegExp]> = [
  ['vcpus min', { vcpus: L.minVcpus }, { vcpus: L.minVcpus - 1 }, /vcpus/],
  ['vcpus max', { vcpus: L.maxVcpus }, { vcpus: L.maxVcpus + 1 }, /vcpus/],
  ['memory min', { memory_mb: L.minMemoryMb }, { memory_mb: L.minMemoryMb - 1 }, /memory_mb/],
  ['memory max', { memory_mb: L.maxMemoryMb }, { memory_mb: L.maxMemoryMb + 1 }, /memory_mb/],
  ['timeout max', { timeout_sec: L.maxTimeoutSec }, { timeout_sec: L.maxTimeoutSec + 1 }, /timeout_sec/],
  ['metadata keys', { metadata: keys(L.maxMetadataKeys) }, { metadata: keys(L.maxMetadataKeys + 1) }, /metadata/],
  [
    'metadata key length',
    { metadata: { ['k'.repeat(L.maxMetadataKeyLength)]: 'v' } },
    { metadata: { ['k'.repeat(L.maxMetadataKeyLength + 1)]: 'v' } },
    /metadata/,
  ],
  [
    'metadata value length',
    { metadata: { k: 'v'.repeat(L.maxMetadataValueLength) } },
    { metadata: { k: 'v'.repeat(L.maxMetadataValueLength + 1) } },
    /metadata/,
  ],
  ['env bytes', { env: envOfBytes(L.maxEnvBytes) }, { env: envOfBytes(L.maxEnvBytes + 1) }, /env/],
  [
    'allow_out entries',
    { network: { allow_out: cidrs(L.maxAllowOut) } },
    { network: { allow_out: cidrs(L.maxAllowOut + 1) } },
    /allow_out/,
  ],
];

test('native API: every contract limit is enforced on its exact edge', async (t) => {
  const cp = await startBareControlPlane(t, 'sqlite');
  const call = client(cp.url, (await newTeamKey(cp)).key);
  for (const [what, accepted, refused, names] of NATIVE_EDGES) {
    const ok = await call('POST', '/v1/capsules', accepted);
    assert.equal(ok.status, 503, `${what}: the limit itself must pass validation, got ${ok.status} ${ok.text}`);
    assert.equal(ok.body.error.code, 'no_host_available', what);
    const bad = await call('POST', '/v1/capsules', refused);
    assert.equal(bad.status, 400, `${what}: one past the limit must be refused, got ${bad.status} ${bad.text}`);
    assert.match(bad.body.error.message, names, what);
  }
  // A command's own timeout: past the limit the body is refused before the capsule is looked up.
  const execAt = await call('POST', '/v1/capsules/cl-abcd/exec', { cmd: 'true', timeout_sec: L.maxCommandTimeoutSec });
  assert.equal(execAt.status, 404, `exec timeout at the limit: ${execAt.text}`);
  const execPast = await call('POST', '/v1/capsules/cl-abcd/exec', {
    cmd: 'true',
    timeout_sec: L.maxCommandTimeoutSec + 1,
  });
  assert.equal(execPast.status, 400, `exec timeout past the limit: ${execPast.text}`);
  assert.match(execPast.body.error.message, /timeout_sec/);
  for (const action of TIMEOUT_ACTIONS) {
    const r = await call('POST', '/v1/capsules', { timeout_action: action });
    assert.equal(r.status, 503, `timeout_action ${action}: ${r.text}`);
  }
});

test('E2B API: the same limits on envVars, metadata and the timeout', async (t) => {
  const cp = await startBareControlPlane(t, 'sqlite');
  const call = client(cp.url, (await newTeamKey(cp)).key);
  const edges: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    ['envVars bytes', { envVars: envOfBytes(L.maxEnvBytes) }, { envVars: envOfBytes(L.maxEnvBytes + 1) }],
    ['metadata keys', { metadata: keys(L.maxMetadataKeys) }, { metadata: keys(L.maxMetadataKeys + 1) }],
    ['timeout', { timeout: L.maxTimeoutSec }, { timeout: L.maxTimeoutSec + 1 }],
  ];
  for (const [what, accepted, refused] of edges) {
    const ok = await call('POST', '/sandboxes', { templateID: CAPSULE_DEFAULTS.template, ...accepted });
    assert.equal(ok.status, 503, `${what}: the limit itself must pass validation, got ${ok.status} ${ok.text}`);
    const bad = await call('POST', '/sandboxes', { templateID: CAPSULE_DEFAULTS.template, ...refused });
    assert.equal(bad.status, 400, `${what}: one past the limit must be refused, got ${bad.status} ${bad.text}`);
    assert.equal(bad.body.code, 400, what);
  }
});

test('OpenAPI: the create body states the contract limits and defaults', async (t) => {
  const cp = await startBareControlPlane(t, 'sqlite');
  const res = await fetch(`${cp.url}/docs/json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as {
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
  };
  type Schema = {
    properties: Record<
      string,
      { minimum?: number; maximum?: number; maxLength?: number; description?: string } & Partial<Schema>
    >;
  };
  const body = doc.paths['/v1/capsules']?.post?.requestBody?.content['application/json']?.schema;
  assert.ok(body, 'POST /v1/capsules has a JSON body schema');
  const p = body.properties;
  const table: Array<[string, number | undefined, number]> = [
    ['vcpus minimum', p.vcpus?.minimum, L.minVcpus],
    ['vcpus maximum', p.vcpus?.maximum, L.maxVcpus],
    ['memory_mb minimum', p.memory_mb?.minimum, L.minMemoryMb],
    ['memory_mb maximum', p.memory_mb?.maximum, L.maxMemoryMb],
    ['timeout_sec maximum', p.timeout_sec?.maximum, L.maxTimeoutSec],
    ['default_user maxLength', p.default_user?.maxLength, L.maxUserNameLength],
  ];
  for (const [what, got, want] of table) assert.equal(got, want, what);
  assert.match(p.timeout_sec?.description ?? '', new RegExp(`default ${CAPSULE_DEFAULTS.timeoutSec}\\b`));
  assert.match(p.vcpus?.description ?? '', new RegExp(`Default ${CAPSULE_DEFAULTS.vcpus}\\b`));
  assert.match(p.memory_mb?.description ?? '', new RegExp(`Default ${CAPSULE_DEFAULTS.memoryMb}\\b`));
  assert.match(p.env?.description ?? '', new RegExp(`at most ${L.maxEnvBytes} bytes`));
});
