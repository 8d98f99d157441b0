// The camelCase views of the contract's JSON at run time: the native API turns a create body into
// the service's input with camelKeys, the CLI prints a capsule back with snakeCase, so every key of
// the capsule schemas must survive the trip both ways.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CapsuleSchema,
  CreateCapsuleBody,
  camelCase,
  camelKeys,
  pickPlainFields,
  snakeCase,
  withoutPlainFields,
} from '../src/index.js';

describe('camelCase views of the contract', () => {
  it('every key of the capsule and create schemas goes to camelCase and back unchanged', () => {
    const keys = [...Object.keys(CapsuleSchema.properties), ...Object.keys(CreateCapsuleBody.properties)];
    for (const key of keys) assert.equal(snakeCase(camelCase(key)), key, key);
    assert.equal(camelCase('memory_mb'), 'memoryMb');
    assert.equal(camelCase('envd_access_token'), 'envdAccessToken');
    assert.equal(snakeCase('maskRequestHost'), 'mask_request_host');
  });

  it('camelKeys renames one level and keeps values (nested objects too) as they are', () => {
    const creds = { username: 'u', password: 'p' };
    const out = camelKeys({ memory_mb: 512, registry_credentials: creds, volume_mounts: [{ name: 'v', path: '/v' }] });
    assert.deepEqual(out, { memoryMb: 512, registryCredentials: creds, volumeMounts: [{ name: 'v', path: '/v' }] });
    assert.equal(out.registryCredentials, creds);
  });

  it('withoutPlainFields leaves the body less its plain fields, pickPlainFields those alone', () => {
    const body = { template: 'base', name: 'web', vcpus: 1 };
    assert.deepEqual(withoutPlainFields(body), { template: 'base', vcpus: 1 });
    assert.deepEqual(pickPlainFields(body), { name: 'web' });
    assert.deepEqual(body, { template: 'base', name: 'web', vcpus: 1 });
  });
});
