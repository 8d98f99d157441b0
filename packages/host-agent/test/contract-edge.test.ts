// The agent's edge (validate.ts, called by the Connect service before the manager) holds a create
// request against the capsule contract of @wrenn/protocol: each bound on its exact edge, as
// InvalidArgument naming the field, with the numbers taken from the contract, never restated.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CAPSULE_LIMITS as L, RUNTIME_NAMES } from '@wrenn/protocol';
import { InvalidArgumentError } from '../src/manager/errors.js';
import type { CreateCapsuleInput } from '../src/manager/manager.js';
import { checkCreateRequest, checkTimeout } from '../src/manager/validate.js';

const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
const envOfBytes = (bytes: number) => ({ A: 'x'.repeat(bytes - JSON.stringify({ A: '' }).length) });

const EDGES: Array<[string, CreateCapsuleInput, CreateCapsuleInput, RegExp]> = [
  ['vcpus min', { vcpus: L.minVcpus }, { vcpus: L.minVcpus - 1 }, /vcpus/],
  ['vcpus max', { vcpus: L.maxVcpus }, { vcpus: L.maxVcpus + 1 }, /vcpus/],
  ['memory min', { memoryMb: L.minMemoryMb }, { memoryMb: L.minMemoryMb - 1 }, /memory_mb/],
  ['memory max', { memoryMb: L.maxMemoryMb }, { memoryMb: L.maxMemoryMb + 1 }, /memory_mb/],
  ['timeout', { timeoutSec: L.maxTimeoutSec }, { timeoutSec: L.maxTimeoutSec + 1 }, /timeout_sec/],
  ['metadata keys', { metadata: keys(L.maxMetadataKeys) }, { metadata: keys(L.maxMetadataKeys + 1) }, /metadata/],
  ['env bytes', { envs: envOfBytes(L.maxEnvBytes) }, { envs: envOfBytes(L.maxEnvBytes + 1) }, /env/],
  ['env name', { envs: { _OK1: 'x' } }, { envs: { '1BAD': 'x' } }, /1BAD/],
  ['env NUL', { envs: { A: 'x' } }, { envs: { A: 'x\0y' } }, /NUL/],
  [
    'allow_out entries',
    { network: { allowOut: Array(L.maxAllowOut).fill('203.0.113.1') } },
    { network: { allowOut: Array(L.maxAllowOut + 1).fill('203.0.113.1') } },
    /allow_out/,
  ],
  ['runtime', { runtime: RUNTIME_NAMES[0] }, { runtime: 'docker' as never }, /runtime/],
  ['default user', { defaultUser: 'user' }, { defaultUser: 'no such user' }, /default_user/],
  ['default workdir', { defaultWorkdir: '/home/user' }, { defaultWorkdir: 'relative' }, /default_workdir/],
];

test('agent edge: every contract bound is enforced on its exact edge, as InvalidArgument', () => {
  for (const [what, accepted, refused, names] of EDGES) {
    assert.doesNotThrow(() => checkCreateRequest(accepted), what);
    assert.throws(
      () => checkCreateRequest(refused),
      (err: unknown) => err instanceof InvalidArgumentError && names.test(err.message),
      what,
    );
  }
  assert.doesNotThrow(() => checkTimeout(0));
  assert.throws(() => checkTimeout(L.maxTimeoutSec + 1), InvalidArgumentError);
  assert.throws(() => checkTimeout(-1), InvalidArgumentError);
});
