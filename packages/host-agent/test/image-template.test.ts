// Templates from container images through the agent's EnsureImageTemplate, against Debian's
// docker-registry on a loopback port holding a musl image this test builds: by tag and by digest,
// the image's run defaults returned, a second template of the same image downloading nothing,
// envd and commands running in a capsule of a musl image (with per-capsule id ranges: files of
// the image owned by root and by `app` inside), and clear errors for a missing image and bad or
// missing credentials.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { HOST_ID_BASE } from '../src/rootfs/id-map.js';
import { haveMuslGcc, pushMuslImage, startRegistry, type TestRegistry } from '../src/testing/oci.js';
import { text } from './agent-helpers.js';
import { imageAgent, registrySkip } from './image-agent.js';

const skip = registrySkip;
if (!haveMuslGcc) console.log('# musl-gcc (Debian musl-tools) is missing: the musl program check is skipped');

let authReg: TestRegistry | undefined;
let digest = '';
const fx = imageAgent(async (reg) => {
  authReg = await startRegistry({ username: 'alice', password: 's3cret' });
  digest = (await pushMuslImage(reg, 'wrenn-test/musl', 'v1')).digest;
  await pushMuslImage(authReg, 'private/musl', 'v1');
});
after(() => authReg?.stop());
const agent = () => fx.agent;
const { ensure, created } = fx;

async function expectCode(p: Promise<unknown>, code: Code, re?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a Connect error, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${Code[code]}, got ${Code[err.code]}: ${err.message}`);
    if (re) assert.match(err.message, re);
    return true;
  });
}

test('an image by tag becomes a template with the image defaults; by digest it is the same, pulled once', {
  skip,
  timeout: 120_000,
}, async () => {
  const first = await ensure(`${fx.reg.host}/wrenn-test/musl:v1`);
  const r = first.result;
  assert.equal(r.manifestDigest, digest);
  assert.equal(r.layerCount, 2);
  assert.equal(r.cachedLayers, 0);
  assert.ok(r.downloadedBytes > 0n);
  assert.match(r.template?.name ?? '', /^oci-[0-9a-f]{40}$/);
  assert.equal(r.template?.kind, 'image');
  assert.deepEqual(r.config?.env, { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', GREETING: 'hello image' });
  assert.equal(r.config?.workdir, '/app');
  assert.equal(r.config?.user, 'app');
  assert.deepEqual(r.config?.cmd, ['/bin/sh', '-c', 'echo started > /tmp/started; exec sleep 3600']);
  assert.ok(
    first.lines.some((l) => /layer 2\/2 .*pulled and unpacked/.test(l)),
    first.lines.join('\n'),
  );
  // The image's layers are used in place: the template's own layer holds only what Wrenn added.
  const own = join(fx.dataDir, 'images', r.template?.name ?? '', 'rootfs');
  assert.ok(!existsSync(join(own, 'bin/busybox')), 'the image layers were copied into the template');
  assert.equal(statSync(join(own, 'etc/hostname')).uid, HOST_ID_BASE);

  const again = await ensure(`${fx.reg.host}/wrenn-test/musl@${digest}`);
  assert.equal(again.result.template?.name, r.template?.name);
  assert.equal(again.result.downloadedBytes, 0n, 'the second template downloaded layers');
  assert.equal(again.result.cachedLayers, 2);
});

test('two concurrent templates of one new image make it once, both get it', { skip, timeout: 120_000 }, async () => {
  const { digest: d } = await pushMuslImage(fx.reg, 'wrenn-test/concurrent', 'v1', [{ name: 'c.txt', content: 'c\n' }]);
  const [x, y] = await Promise.all([
    ensure(`${fx.reg.host}/wrenn-test/concurrent:v1`),
    ensure(`${fx.reg.host}/wrenn-test/concurrent@${d}`),
  ]);
  assert.equal(x.result.template?.name, y.result.template?.name);
  assert.equal(x.result.manifestDigest, d);
});

test('a capsule of a musl image runs envd and commands; ids and files of the image are right', {
  skip,
  timeout: 120_000,
}, async () => {
  const { result } = await ensure(`${fx.reg.host}/wrenn-test/musl:v1`);
  const { capsule } = await agent().client.createCapsule({ template: result.template?.name ?? '', timeoutSec: 120 });
  assert.ok(capsule);
  created.push(capsule.id);
  const sh = async (script: string, user = 'root') => {
    const res = await agent().client.exec({ capsuleId: capsule.id, cmd: '/bin/sh', args: ['-c', script], user });
    return { code: res.exitCode, out: text(res.stdout), err: text(res.stderr) };
  };
  const os = await sh('cat /etc/os-release; cat /app/hello.txt; test -e /etc/motd && echo motd-still-there; id -u');
  assert.equal(os.code, 0, os.err);
  assert.equal(os.out, 'ID=wrenn-test-musl\nhi from the image\n0\n');
  // Files of the image keep their owners inside, through the capsule's own id range.
  const owners = await sh('stat -c "%U %u" /app/hello.txt /bin/busybox; id -un', 'app');
  assert.equal(owners.code, 0, owners.err);
  assert.equal(owners.out, 'app 1000\nroot 0\napp\n');
  // The account Wrenn added for the default user (uid 1000 was the image's `app`).
  const user = await sh('id -u; echo $HOME; cat /etc/hostname', 'user');
  assert.equal(user.code, 0, user.err);
  assert.equal(user.out, `1001\n/home/user\n${capsule.id}\n`);
  if (haveMuslGcc) {
    const hello = await sh('/usr/bin/hello-musl; ldd /usr/bin/hello-musl 2>&1 | head -1 || true');
    assert.equal(hello.code, 0, hello.err);
    assert.match(hello.out, /^hello from musl\n/);
  }
  await agent().client.destroyCapsule({ id: capsule.id });
});

test('a missing image, a missing tag and bad or missing credentials are clear errors', {
  skip,
  timeout: 60_000,
}, async () => {
  const a = agent().client;
  const collect = async (image: string, creds: { username?: string; password?: string } = {}) => {
    for await (const _ of a.ensureImageTemplate({ image, ...creds })) {
      // drain
    }
  };
  await expectCode(collect(`${fx.reg.host}/wrenn-test/nothing-here:v1`), Code.NotFound, /nothing-here/);
  await expectCode(collect(`${fx.reg.host}/wrenn-test/musl:v9`), Code.NotFound, /v9/);
  await expectCode(collect(`${authReg?.host}/private/musl:v1`), Code.Unauthenticated);
  await expectCode(
    collect(`${authReg?.host}/private/musl:v1`, { username: 'alice', password: 'wrong' }),
    Code.Unauthenticated,
  );
  await expectCode(collect('Not A Reference!'), Code.InvalidArgument);
  await expectCode(
    collect(`${authReg?.host}/private/musl:v1`, { username: 'alice' }),
    Code.InvalidArgument,
    /password/,
  );
  const ok = await ensure(`${authReg?.host}/private/musl:v1`, { username: 'alice', password: 's3cret' });
  // Same content as the public image: same layers, nothing downloaded again.
  assert.equal(ok.result.downloadedBytes, 0n);
});
