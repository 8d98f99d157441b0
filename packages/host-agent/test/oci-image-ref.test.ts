// Image references as `docker pull` reads them, and the registry URL each one is fetched from.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseImageReference } from '../src/oci/image-ref.js';
import { readRegistryAuthFile } from '../src/oci/registry-auth-file.js';
import { parseChallenge, registryBaseUrl } from '../src/oci/registry-client.js';

test('Docker Hub names, tags, digests and registry hosts', () => {
  assert.deepEqual(parseImageReference('python:3.12-slim'), {
    registry: 'docker.io',
    repository: 'library/python',
    tag: '3.12-slim',
  });
  assert.deepEqual(parseImageReference('e2bdev/code-interpreter'), {
    registry: 'docker.io',
    repository: 'e2bdev/code-interpreter',
    tag: 'latest',
  });
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseImageReference(`ghcr.io/org/app@${d}`), {
    registry: 'ghcr.io',
    repository: 'org/app',
    digest: d,
  });
  assert.deepEqual(parseImageReference(`localhost:5000/x/y:v1@${d}`), {
    registry: 'localhost:5000',
    repository: 'x/y',
    tag: 'v1',
    digest: d,
  });
  assert.equal(parseImageReference('index.docker.io/library/node:22').registry, 'docker.io');
  for (const bad of ['', 'UPPER/case', 'a/../b', 'x@sha256:12', 'x:', 'x:/y', ' x']) {
    assert.throws(() => parseImageReference(bad), /invalid image reference/, bad);
  }
});

test('registry URLs: Hub, mirror, loopback over HTTP, others over HTTPS', () => {
  assert.equal(registryBaseUrl('docker.io', { mirror: '' }), 'https://registry-1.docker.io');
  assert.equal(registryBaseUrl('docker.io', { mirror: 'http://10.0.0.1:5000/' }), 'http://10.0.0.1:5000');
  assert.throws(() => registryBaseUrl('docker.io', { mirror: 'ftp://x' }), /WRENN_REGISTRY_MIRROR/);
  assert.equal(registryBaseUrl('127.0.0.1:5000', {}), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('ghcr.io', {}), 'https://ghcr.io');
  assert.equal(registryBaseUrl('reg.lan:80', { plainHttp: ['reg.lan:80'] }), 'http://reg.lan:80');
});

test('WWW-Authenticate challenges', () => {
  assert.deepEqual(
    parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"',
    ),
    {
      scheme: 'bearer',
      params: {
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/x:pull',
      },
    },
  );
  assert.equal(parseChallenge('Basic realm="r"').scheme, 'basic');
});

test('registry auth files in Docker config.json shape', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-oci-auth-'));
  try {
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:pa:ss').toString('base64') },
          'http://127.0.0.1:5000': { username: 'u', password: 'p' },
        },
      }),
    );
    assert.deepEqual(readRegistryAuthFile(file), {
      'docker.io': { username: 'hub', password: 'pa:ss' },
      '127.0.0.1:5000': { username: 'u', password: 'p' },
    });
    writeFileSync(file, JSON.stringify({ auths: { x: { auth: Buffer.from('nocolon').toString('base64') } } }));
    assert.throws(() => readRegistryAuthFile(file), /not base64 user:password/);
    writeFileSync(file, '{');
    assert.throws(() => readRegistryAuthFile(file), /registry auth file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
