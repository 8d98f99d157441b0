// OCI pulls against a real registry on this machine (Debian's docker-registry on a loopback port,
// filled with images built here): by tag and digest, a multi-arch index, OCI and Docker schema 2
// manifests, gzip and zstd layers, whiteouts and opaque dirs seen through a real overlay mount,
// the id shift, the layer cache (second pull downloads nothing, counted at a proxy), the mirror
// setting, anonymous bearer tokens, basic auth, clear errors, and a pull cut half-way then retried.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError, UnauthenticatedError } from '@wrenn/protocol';
import { type PullProgress, pullImage } from '../src/oci/index.js';
import { HOST_ID_BASE } from '../src/rootfs/id-map.js';
import {
  DOCKER_MANIFEST,
  gzip,
  haveRegistry,
  OCI_INDEX,
  pushImage,
  pushManifest,
  sha256,
  startRegistry,
  type TestRegistry,
  tarOf,
  zstd,
} from '../src/testing/oci.js';

const skip = haveRegistry ? false : 'Debian docker-registry is not installed (scripts/setup.mjs installs it)';
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZST = 'application/vnd.oci.image.layer.v1.tar+zstd';

let reg: TestRegistry | undefined;
let authReg: TestRegistry | undefined;
let proxy: Server | undefined;
let proxyHost = '';
let cacheDir = '';
const mounts: string[] = [];
// The proxy in front of the registry: counts blob downloads, can cut or corrupt them, can ask for a bearer token.
const proxyState = { blobGets: 0, mode: 'pass' as 'pass' | 'cut' | 'tamper' | 'hang', bearer: false, tokenGets: 0 };
const TOKEN = 'test-token-123';
let amd64Digest = '';
let indexDigest = '';

const config = (arch: string) => ({
  architecture: arch,
  os: 'linux',
  config: {
    Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'GREETING=hi=there'],
    WorkingDir: '/app',
    User: '1000:1000',
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: ['echo started'],
  },
  rootfs: { type: 'layers', diff_ids: [] },
});

async function startProxy(target: string): Promise<void> {
  const server = createServer(async (req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/token')) {
      proxyState.tokenGets++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: TOKEN }));
      return;
    }
    if (proxyState.bearer && req.headers.authorization !== `Bearer ${TOKEN}`) {
      res
        .writeHead(401, {
          'www-authenticate': `Bearer realm="http://${proxyHost}/token",service="test-registry",scope="repository:x:pull"`,
        })
        .end();
      return;
    }
    const up = await fetch(`http://${target}${url}`, {
      headers: { accept: String(req.headers.accept ?? '*/*') },
      redirect: 'manual',
    });
    const body = Buffer.from(await up.arrayBuffer());
    const headers: Record<string, string> = {};
    for (const h of ['content-type', 'docker-content-digest', 'www-authenticate']) {
      const v = up.headers.get(h);
      if (v) headers[h] = v;
    }
    const isBlob = /\/blobs\/sha256:/.test(url) && up.status === 200 && req.method === 'GET';
    if (isBlob) proxyState.blobGets++;
    if (isBlob && proxyState.mode === 'hang' && body.length > 1024) {
      // Half the layer, then nothing until the client goes away.
      res.writeHead(200, { ...headers, 'content-length': String(body.length) });
      res.write(body.subarray(0, body.length >> 1));
      return;
    }
    if (isBlob && proxyState.mode === 'cut' && body.length > 1024) {
      res.writeHead(200, { ...headers, 'content-length': String(body.length) });
      res.write(body.subarray(0, body.length >> 1));
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    const mid = body.length >> 1;
    if (isBlob && proxyState.mode === 'tamper' && body.length > 1024) body.writeUInt8(body.readUInt8(mid) ^ 0xff, mid);
    res.writeHead(up.status, { ...headers, 'content-length': String(body.length) }).end(body);
  });
  proxy = server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxyHost = `127.0.0.1:${(server.address() as { port: number }).port}`;
}

function mountOverlay(layerDirs: string[]): string {
  const target = mkdtempSync('/tmp/wrenn-oci-root-');
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${layerDirs.join(':')}`, target]);
  mounts.push(target);
  return target;
}

function unmountAll(): void {
  for (const m of mounts.splice(0)) {
    try {
      execFileSync('umount', [m]);
    } catch {
      execFileSync('umount', ['-l', m]);
    }
    rmSync(m, { recursive: true, force: true });
  }
}

describe('OCI pulls from a local docker-registry', { skip }, () => {
  before(async () => {
    reg = await startRegistry();
    await startProxy(reg.host);
    cacheDir = mkdtempSync('/tmp/wrenn-oci-cache-');
    const layer1 = await tarOf([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hello', content: 'hello from layer 1\n' },
      { name: 'etc/hello-link', type: 'link', linkname: 'etc/hello' },
      { name: 'app/', type: 'directory', uid: 1000, gid: 1000 },
      { name: 'app/data', content: 'mine\n', uid: 1000, gid: 1000 },
      { name: 'a/', type: 'directory' },
      { name: 'a/x', content: 'x' },
      { name: 'a/y', content: 'y' },
      { name: 'old.txt', content: 'to be deleted' },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/su', content: '#!/bin/true\n', mode: 0o4755 },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
    ]);
    const layer2 = await tarOf([
      { name: '.wh.old.txt', content: '' },
      { name: 'a/', type: 'directory' },
      { name: 'a/.wh..wh..opq', content: '' },
      { name: 'a/z', content: 'z' },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hello', content: 'hello from layer 2\n' },
    ]);
    const layers = [
      { blob: gzip(layer1), mediaType: GZ },
      { blob: zstd(layer2), mediaType: ZST },
    ];
    for (const repo of ['team/demo', 'library/demo']) {
      const amd = await pushImage(reg, repo, undefined, layers, config('amd64'));
      amd64Digest = amd.digest;
      const arm = await pushImage(reg, repo, undefined, [{ blob: gzip(layer1), mediaType: GZ }], config('arm64'));
      const entry = (d: { digest: string; size: number }, architecture: string) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: d.digest,
        size: d.size,
        platform: { os: 'linux', architecture },
      });
      const index = (list: object[]) => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: list });
      indexDigest = (
        await pushManifest(reg, repo, 'multi', index([entry(arm, 'arm64'), entry(amd, 'amd64')]), OCI_INDEX)
      ).digest;
      await pushManifest(reg, repo, 'armonly', index([entry(arm, 'arm64')]), OCI_INDEX);
    }
    await pushImage(
      reg,
      'team/docker',
      'v1',
      [{ blob: gzip(layer1), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
      config('amd64'),
      DOCKER_MANIFEST,
    );
  });

  after(async () => {
    unmountAll();
    await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
    await reg?.stop();
    await authReg?.stop();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  });

  test('a multi-arch index by tag: linux/amd64 layers unpacked, whiteouts and opaque dirs applied, ids shifted', async () => {
    const before = proxyState.blobGets;
    const events: PullProgress[] = [];
    const img = await pullImage(`${proxyHost}/team/demo:multi`, { cacheDir, onProgress: (p) => events.push(p) });
    assert.equal(img.manifestDigest, amd64Digest);
    assert.equal(img.layerDirs.length, 2);
    const downloaded = events.filter((e) => e.event === 'download').reduce((s, e) => s + (e.bytes ?? 0), 0);
    assert.equal(downloaded, img.downloadedBytes, 'download progress adds up');
    assert.deepEqual(
      events.filter((e) => e.event === 'layer').map((e) => [e.layerIndex, e.layerCount, e.cached]),
      [
        [0, 2, false],
        [1, 2, false],
      ],
    );
    assert.equal(img.cachedLayers, 0);
    assert.ok(img.downloadedBytes > 0);
    assert.equal(proxyState.blobGets - before, 3, 'config + 2 layers downloaded');
    assert.deepEqual(img.defaults, {
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', GREETING: 'hi=there' },
      workdir: '/app',
      user: '1000:1000',
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo started'],
    });
    const root = mountOverlay(img.layerDirs);
    assert.equal(readFileSync(join(root, 'etc/hello'), 'utf8'), 'hello from layer 2\n');
    assert.equal(existsSync(join(root, 'old.txt')), false, 'whiteout hides old.txt');
    assert.deepEqual(readdirSync(join(root, 'a')).sort(), ['z'], 'opaque dir hides a/x and a/y');
    assert.equal(readFileSync(join(root, 'etc/hello-link'), 'utf8'), 'hello from layer 1\n');
    const lower = img.layerDirs[1] ?? '';
    assert.equal(statSync(join(lower, 'etc/hello')).ino, statSync(join(lower, 'etc/hello-link')).ino, 'hard link kept');
    assert.equal(statSync(join(root, 'app/data')).uid, HOST_ID_BASE + 1000);
    assert.equal(statSync(join(root, 'etc/hello')).uid, HOST_ID_BASE);
    const su = statSync(join(root, 'bin/su'));
    assert.equal(su.uid, HOST_ID_BASE);
    assert.equal(su.mode & 0o7777, 0o4755, 'setuid kept for the shifted root');
    assert.equal(lstatSync(join(root, 'bin/sh')).isSymbolicLink(), true);
  });

  test('a second pull by digest downloads no layer', async () => {
    const before = proxyState.blobGets;
    const img = await pullImage(`${proxyHost}/team/demo@${amd64Digest}`, { cacheDir });
    assert.equal(img.cachedLayers, 2);
    assert.equal(img.downloadedBytes, 0);
    assert.equal(proxyState.blobGets - before, 1, 'only the small config blob is fetched');
    const byIndex = await pullImage(`${proxyHost}/team/demo@${indexDigest}`, { cacheDir });
    assert.equal(byIndex.manifestDigest, amd64Digest, 'an index digest resolves to its linux/amd64 manifest');
    assert.equal(byIndex.downloadedBytes, 0);
  });

  test('a Docker schema 2 manifest pulls', async () => {
    const img = await pullImage(`${proxyHost}/team/docker:v1`, { cacheDir });
    assert.equal(img.layerDirs.length, 1);
    assert.equal(img.defaults.workdir, '/app');
  });

  test('Docker Hub names go through WRENN_REGISTRY_MIRROR', async () => {
    const gets = proxyState.blobGets;
    const img = await pullImage('demo:multi', { cacheDir, mirror: `http://${proxyHost}` });
    assert.equal(img.reference, `docker.io/library/demo:multi@${amd64Digest}`);
    assert.ok(proxyState.blobGets > gets, 'the mirror was asked');
  });

  test('an anonymous bearer token is fetched from the challenge realm', async () => {
    proxyState.bearer = true;
    try {
      const tokens = proxyState.tokenGets;
      const img = await pullImage(`${proxyHost}/team/demo:multi`, { cacheDir });
      assert.equal(img.manifestDigest, amd64Digest);
      assert.equal(proxyState.tokenGets, tokens + 1);
    } finally {
      proxyState.bearer = false;
    }
  });

  test('missing images, tags and platforms are clear errors', async () => {
    await assert.rejects(pullImage(`${proxyHost}/team/nope:v1`, { cacheDir }), (e: Error) => {
      assert.ok(e instanceof NotFoundError, String(e));
      assert.match(e.message, /team\/nope.*not found/);
      return true;
    });
    await assert.rejects(pullImage(`${proxyHost}/team/demo:nope`, { cacheDir }), NotFoundError);
    await assert.rejects(
      pullImage(`${proxyHost}/team/demo:armonly`, { cacheDir }),
      /no linux\/amd64 variant \(it has: linux\/arm64\)/,
    );
    await assert.rejects(pullImage('Bad Name', { cacheDir }), /invalid image reference/);
  });

  test('a pull cut half-way leaves nothing cached; the retry succeeds', async () => {
    const big = await tarOf([{ name: 'big.bin', content: randomBytes(3 << 20) }]);
    const blob = gzip(big);
    await pushImage(reg as TestRegistry, 'team/big', 'v1', [{ blob, mediaType: GZ }], config('amd64'));
    const hex = sha256(blob).slice('sha256:'.length);
    proxyState.mode = 'cut';
    try {
      await assert.rejects(pullImage(`${proxyHost}/team/big:v1`, { cacheDir }));
    } finally {
      proxyState.mode = 'pass';
    }
    assert.equal(existsSync(join(cacheDir, 'layers', hex)), false);
    assert.deepEqual(
      readdirSync(join(cacheDir, 'tmp')).filter((n) => n.startsWith(hex)),
      [],
    );
    const img = await pullImage(`${proxyHost}/team/big:v1`, { cacheDir });
    assert.equal(img.cachedLayers, 0);
    assert.equal(statSync(join(img.layerDirs[0] ?? '', 'big.bin')).size, 3 << 20);
  });

  test('two pulls of one image at once download each layer once', async () => {
    const blob = gzip(await tarOf([{ name: 'twice.bin', content: randomBytes(256 << 10) }]));
    await pushImage(reg as TestRegistry, 'team/twice', 'v1', [{ blob, mediaType: GZ }], config('amd64'));
    const before = proxyState.blobGets;
    const [a, b] = await Promise.all([
      pullImage(`${proxyHost}/team/twice:v1`, { cacheDir }),
      pullImage(`${proxyHost}/team/twice:v1`, { cacheDir }),
    ]);
    assert.deepEqual(a.layerDirs, b.layerDirs);
    assert.equal(a.cachedLayers + b.cachedLayers, 1, 'one of them waited for the other');
    assert.equal(proxyState.blobGets - before, 3, 'two config blobs and the layer once');
  });

  test('a pulling process killed half-way (SIGKILL) leaves nothing cached; the next pull cleans up and succeeds', async () => {
    const blob = gzip(await tarOf([{ name: 'killed.bin', content: randomBytes(2 << 20) }]));
    await pushImage(reg as TestRegistry, 'team/killed', 'v1', [{ blob, mediaType: GZ }], config('amd64'));
    const hex = sha256(blob).slice('sha256:'.length);
    const tmp = join(cacheDir, 'tmp');
    const module = new URL('../src/oci/index.js', import.meta.url).href;
    const script = `import(${JSON.stringify(module)}).then((m) => m.pullImage(${JSON.stringify(`${proxyHost}/team/killed:v1`)}, { cacheDir: ${JSON.stringify(cacheDir)} }))`;
    proxyState.mode = 'hang';
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    try {
      for (let i = 0; !(existsSync(join(tmp, `${hex}.blob`)) && statSync(join(tmp, `${hex}.blob`)).size > 0); i++) {
        assert.ok(i < 200 && child.exitCode === null, 'the child started downloading the layer');
        await sleep(50);
      }
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) =>
        child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r),
      );
      proxyState.mode = 'pass';
    }
    assert.ok(existsSync(join(tmp, `${hex}.lock`)), 'the dead pull left its lock and partial blob');
    assert.equal(existsSync(join(cacheDir, 'layers', hex)), false);
    const img = await pullImage(`${proxyHost}/team/killed:v1`, { cacheDir });
    assert.equal(img.cachedLayers, 0);
    assert.equal(statSync(join(img.layerDirs[0] ?? '', 'killed.bin')).size, 2 << 20);
    assert.deepEqual(
      readdirSync(tmp).filter((n) => n.startsWith(hex)),
      [],
      'no leftovers',
    );
  });

  test('a corrupted layer is refused by its digest', async () => {
    const blob = gzip(await tarOf([{ name: 'f.bin', content: randomBytes(64 << 10) }]));
    await pushImage(reg as TestRegistry, 'team/tampered', 'v1', [{ blob, mediaType: GZ }], config('amd64'));
    proxyState.mode = 'tamper';
    try {
      await assert.rejects(pullImage(`${proxyHost}/team/tampered:v1`, { cacheDir }), /digest .*mismatch/);
    } finally {
      proxyState.mode = 'pass';
    }
    assert.equal(existsSync(join(cacheDir, 'layers', sha256(blob).slice(7))), false);
  });

  test('basic auth: no or wrong credentials are clear errors, the right ones pull', async () => {
    authReg = await startRegistry({ username: 'puller', password: 's3cret' });
    await pushImage(
      authReg,
      'private/app',
      'v1',
      [{ blob: gzip(await tarOf([{ name: 'secret', content: 'ok' }])), mediaType: GZ }],
      config('amd64'),
    );
    const ref = `${authReg.host}/private/app:v1`;
    const dir = join(cacheDir, 'auth');
    mkdirSync(dir);
    await assert.rejects(pullImage(ref, { cacheDir: dir }), (e: Error) => {
      assert.ok(e instanceof UnauthenticatedError, String(e));
      assert.match(e.message, /needs credentials/);
      return true;
    });
    await assert.rejects(
      pullImage(ref, { cacheDir: dir, credentials: { [authReg.host]: { username: 'puller', password: 'wrong' } } }),
      /refused the credentials/,
    );
    const img = await pullImage(ref, {
      cacheDir: dir,
      credentials: { [authReg.host]: { username: 'puller', password: 's3cret' } },
    });
    assert.equal(readFileSync(join(img.layerDirs[0] ?? '', 'secret'), 'utf8'), 'ok');
    // The same credentials from a Docker config.json-shaped file (WRENN_REGISTRY_AUTH_FILE).
    const authFile = join(dir, 'auth.json');
    const auth = Buffer.from('puller:s3cret').toString('base64');
    writeFileSync(authFile, JSON.stringify({ auths: { [`http://${authReg.host}`]: { auth } } }));
    const again = await pullImage(ref, { cacheDir: dir, authFile });
    assert.equal(again.cachedLayers, 1);
    writeFileSync(authFile, JSON.stringify({ auths: { [authReg.host]: { username: 'puller', password: 'nope' } } }));
    await assert.rejects(pullImage(ref, { cacheDir: dir, authFile }), /refused the credentials/);
  });
});
