// Pure parts of the E2B API: how capsules look as E2B sandboxes and how the SDK's metadata
// query is decoded.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { e2bState, parseMetadataQuery, toListedSandbox } from '../src/api/e2b/mapping.js';
import type { Capsule } from '../src/db/repositories/capsules.js';

test('E2B sees starting/running as running and paused/hibernated as paused', () => {
  assert.equal(e2bState('starting'), 'running');
  assert.equal(e2bState('running'), 'running');
  assert.equal(e2bState('paused'), 'paused');
  assert.equal(e2bState('hibernated'), 'paused');
});

test('the metadata query is decoded the way the SDK encodes it (each pair encoded, then the string)', () => {
  // What the SDK sends for { 'a b': 'x&y', user: 'abc' }: pairs encoded with encodeURIComponent,
  // joined by URLSearchParams (which encodes again); Fastify decodes the outer layer.
  const pairs = Object.fromEntries(
    Object.entries({ 'a b': 'x&y', user: 'abc' }).map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)]),
  );
  const sent = new URLSearchParams(pairs).toString();
  assert.deepEqual(parseMetadataQuery(sent), { 'a b': 'x&y', user: 'abc' });
  assert.deepEqual(parseMetadataQuery('user=abc&app=prod'), { user: 'abc', app: 'prod' });
  assert.equal(parseMetadataQuery(''), undefined);
  assert.equal(parseMetadataQuery(undefined), undefined);
});

test('a listed sandbox carries the capsule fields under E2B names', () => {
  const now = new Date('2026-01-02T03:04:05.000Z');
  const c: Capsule = {
    id: 'cl-abc',
    teamId: 'team-x',
    hostId: 'host-y',
    template: 'base',
    state: 'hibernated',
    runtime: 'namespace',
    vcpus: 2,
    memoryMb: 1024,
    timeoutSec: 60,
    timeoutAction: 'pause',
    metadata: { k: 'v' },
    envs: {},
    envdAccessToken: 'tok',
    clientId: null,
    internet: true,
    autoResume: false,
    trafficAccessToken: null,
    maskRequestHost: null,
    plainFields: {},
    createdAt: now,
    updatedAt: now,
    expiresAt: null,
    stoppedAt: null,
    error: null,
  };
  const l = toListedSandbox(c);
  assert.equal(l.sandboxID, 'cl-abc');
  assert.equal(l.templateID, 'base');
  assert.equal(l.state, 'paused');
  assert.equal(l.cpuCount, 2);
  assert.equal(l.memoryMB, 1024);
  assert.equal(l.startedAt, '2026-01-02T03:04:05.000Z');
  assert.equal(l.endAt, '9999-12-31T23:59:59.000Z', 'no timeout: an end far away');
  assert.deepEqual(l.metadata, { k: 'v' });
  assert.match(l.envdVersion, /^\d+\.\d+\.\d+$/);
});
