// Capsules from container images through the native API against a live `wrenn up` and Debian's
// docker-registry on a loopback port holding a musl image built here: by tag and by digest, the
// image's ENV/WORKDIR/USER applied (commands default to the image's user and directory) and its
// ENTRYPOINT/CMD kept as metadata but not run (a REPL image's CMD would exit), a Dockerfile CMD over
// an image composed with the image's ENTRYPOINT, a second template of the same image downloading
// nothing (bytes counted by the agent), and clear 4xx answers for a missing image, refused
// credentials and bad requests.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  pushMuslImage,
  registrySkip,
  startGatedRegistry,
  startRegistry,
  type TestRegistry,
} from '@wrenn/host-agent/testing/oci';
import { ensureImageTemplate } from '../src/services/image-templates.js';
import { type LiveSystem, startLive, waitFor } from './e2b-live.js';
import { client, execOk, newTeamKey } from './native-helpers.js';

const SLOT = 13;
const run = promisify(execFile);
const WRENN = new URL('../../../cli/bin/wrenn.js', import.meta.url).pathname;
const skip = registrySkip;

describe('capsules from container images (live)', { skip }, () => {
  let sys: LiveSystem;
  let call: ReturnType<typeof client>;
  let reg: TestRegistry;
  let authReg: TestRegistry;
  let digest = '';
  const capsules: string[] = [];

  before(async () => {
    [reg, authReg] = await Promise.all([startRegistry(), startRegistry({ username: 'bob', password: 'pw-123' })]);
    digest = (await pushMuslImage(reg, 'wrenn-test/musl', 'v1')).digest;
    // A REPL-like image: its CMD (a shell) exits at once without a terminal; its ENTRYPOINT sets EP.
    await pushMuslImage(reg, 'wrenn-test/musl', 'repl', [], {
      Entrypoint: ['/usr/bin/env', 'EP=from-entrypoint'],
      Cmd: ['/bin/sh'],
    });
    await pushMuslImage(authReg, 'private/musl', 'v1');
    // Docker Hub names (FROM bsae) go to the test's registry, never to the internet.
    process.env.WRENN_REGISTRY_MIRROR = `http://${reg.host}`;
    sys = await startLive({ db: 'sqlite', slot: SLOT });
    call = client(sys.url, sys.adminKey);
  });
  after(async () => {
    try {
      for (const id of capsules) await call?.('DELETE', `/v1/capsules/${id}`).catch(() => undefined);
      await sys?.close();
    } finally {
      delete process.env.WRENN_REGISTRY_MIRROR;
      await reg?.stop();
      await authReg?.stop();
    }
  });

  const exec = (id: string, cmd: string, user?: string) => execOk(call, id, cmd, user);

  /** The processes in the capsule (busybox ps), for what must or must not run there. */
  const processes = async (id: string) => (await exec(id, 'ps', 'root')).stdout;

  type Build = { status: string; error: string; logs: string };
  const buildDone = async (buildId: string): Promise<Build> => {
    let b: Build = { status: 'building', error: '', logs: '' };
    for (let i = 0; i < 600 && b.status === 'building'; i++) {
      await new Promise((res) => setTimeout(res, 200));
      b = (await call('GET', `/v1/templates/builds/${buildId}`)).body;
    }
    assert.equal(b.status, 'ready', `${b.error}\n${b.logs}`);
    return b;
  };
  const build = async (name: string, dockerfile: string) => {
    const start = await call('POST', '/v1/templates', { name, dockerfile });
    assert.equal(start.status, 202, start.text);
    return buildDone(start.body.build_id);
  };

  it('creates a capsule from an image by tag with its ENV, WORKDIR and USER applied, its CMD not run', async () => {
    const created = await call('POST', '/v1/capsules', { image: `${reg.host}/wrenn-test/musl:v1`, timeout_sec: 300 });
    assert.equal(created.status, 201, created.text);
    const id = created.body.id as string;
    capsules.push(id);
    assert.match(created.body.template, /^img-[0-9a-f]{40}$/);
    const r = await exec(id, 'echo "$GREETING"; pwd; id -un; cat /app/hello.txt');
    assert.equal(r.exit_code, 0, r.stderr);
    assert.equal(r.stdout, 'hello image\n/app\napp\nhi from the image\n');
    // The image's CMD is no start command: it was not launched (a start command is launched before
    // the create returns, so it would be in the process list or have left /tmp/started).
    const ps = await processes(id);
    assert.doesNotMatch(ps, /sleep 3600|echo started/, ps);
    assert.equal((await exec(id, 'test -e /tmp/started && echo there || echo absent')).stdout, 'absent\n');
    // The request's env wins over the image's; root is still reachable by name.
    assert.equal((await exec(id, 'id -u', 'root')).stdout, '0\n');
    // Image templates are the team's, but hidden from its template list.
    const list = await call('GET', '/v1/templates');
    assert.equal(list.status, 200, list.text);
    assert.ok(!(list.body.templates as { name: string }[]).some((t) => t.name.startsWith('img-')));
  });

  it('by digest it is the same template; a second template of the image downloads nothing', async () => {
    const byDigest = await call('POST', '/v1/capsules', {
      image: `${reg.host}/wrenn-test/musl@${digest}`,
      env: { GREETING: 'from the request' },
      timeout_sec: 300,
    });
    assert.equal(byDigest.status, 201, byDigest.text);
    capsules.push(byDigest.body.id);
    assert.equal(byDigest.body.template, `img-${digest.slice('sha256:'.length, 'sha256:'.length + 40)}`);
    assert.equal((await exec(byDigest.body.id, 'echo "$GREETING"')).stdout, 'from the request\n');
    // Another team: a template of its own, made from the host's cached layers.
    const other = await newTeamKey(sys.cp, 'image-team');
    const lines: string[] = [];
    const got = await ensureImageTemplate(sys.cp.ctx, other.teamId, {
      image: `${reg.host}/wrenn-test/musl:v1`,
      onProgress: (l) => lines.push(l),
    });
    assert.equal(got.downloadedBytes, 0, lines.join('\n'));
    assert.equal(got.cachedLayers, 2);
    assert.equal(got.template.teamId, other.teamId);
    // The image's ENTRYPOINT/CMD are the template's metadata, not its start command.
    assert.equal(got.config.startCmd, null);
    assert.deepEqual(got.config.cmd, ['/bin/sh', '-c', 'echo started > /tmp/started; exec sleep 3600']);
    assert.deepEqual(got.config.entrypoint, []);
    assert.ok(
      lines.some((l) => /layer 1\/2 .*: cached/.test(l)),
      lines.join('\n'),
    );
  });

  it('answers a missing image 404, refused credentials 403 and bad requests 400', async () => {
    const missing = await call('POST', '/v1/capsules', { image: `${reg.host}/wrenn-test/nope:v1` });
    assert.equal(missing.status, 404, missing.text);
    assert.match(missing.body.error.message, /nope/);
    const anon = await call('POST', '/v1/capsules', { image: `${authReg.host}/private/musl:v1` });
    assert.equal(anon.status, 403, anon.text);
    assert.match(anon.body.error.message, /private\/musl/);
    const wrong = await call('POST', '/v1/capsules', {
      image: `${authReg.host}/private/musl:v1`,
      registry_credentials: { username: 'bob', password: 'wrong' },
    });
    assert.equal(wrong.status, 403, wrong.text);
    const both = await call('POST', '/v1/capsules', { image: `${reg.host}/wrenn-test/musl:v1`, template: 'minimal' });
    assert.equal(both.status, 400, both.text);
    assert.match(both.body.error.message, /either template or image/);
    const bad = await call('POST', '/v1/capsules', { image: 'Not A Reference' });
    assert.equal(bad.status, 400, bad.text);
    const ok = await call('POST', '/v1/capsules', {
      image: `${authReg.host}/private/musl:v1`,
      registry_credentials: { username: 'bob', password: 'pw-123' },
      timeout_sec: 300,
    });
    assert.equal(ok.status, 201, ok.text);
    capsules.push(ok.body.id);
  });

  it('the CLI (through the SDK) creates capsules from images, with registry credentials', async () => {
    const env = { ...process.env, WRENN_BASE_URL: sys.url, WRENN_API_KEY: sys.adminKey, HOME: sys.dataDir };
    const made = await run(
      process.execPath,
      [WRENN, 'capsule', 'create', '--image', `${authReg.host}/private/musl:v1`, '--registry-user', 'bob'],
      { env: { ...env, WRENN_REGISTRY_PASSWORD: 'pw-123' } },
    );
    const id = made.stdout.trim();
    capsules.push(id);
    assert.equal((await exec(id, 'id -un; pwd')).stdout, 'app\n/app\n');
    await assert.rejects(
      run(process.execPath, [WRENN, 'capsule', 'create', '--image', `${authReg.host}/private/musl:v1`], { env }),
      (err: { stderr?: string }) => /registry|private\/musl/.test(err.stderr ?? ''),
    );
  });

  it('builds a Dockerfile FROM an image: its config inherited, pull lines in the build log; a bad FROM is a 404', async () => {
    const dockerfile = `FROM ${reg.host}/wrenn-test/musl:v1\nENV EXTRA=-plus\nRUN echo "built as $(id -un) in $(pwd)" > built.txt\n`;
    const built = await build('from-image', dockerfile);
    assert.match(built.logs, /pulling container image .*wrenn-test\/musl:v1/);
    assert.match(built.logs, /layer 2\/2 [0-9a-f]{12}: cached/);
    const created = await call('POST', '/v1/capsules', { template: 'from-image', timeout_sec: 300 });
    assert.equal(created.status, 201, created.text);
    capsules.push(created.body.id);
    const r = await exec(created.body.id, 'cat built.txt; echo "$GREETING$EXTRA"');
    assert.equal(r.stdout, 'built as app in /app\nhello image-plus\n');

    const missing = await call('POST', '/v1/templates', {
      name: 'from-missing',
      dockerfile: `FROM ${reg.host}/wrenn-test/absent:v1\nRUN true\n`,
    });
    assert.equal(missing.status, 404, missing.text);
    assert.match(missing.body.error.message, /line 1: FROM .*absent/);
    const typo = await call('POST', '/v1/templates', { name: 'from-typo', dockerfile: 'FROM bsae\nRUN true\n' });
    assert.equal(typo.status, 404, typo.text);
    assert.match(typo.body.error.message, /no template 'bsae'/);
  });

  it("a REPL image's capsule keeps running; a Dockerfile CMD over it composes with its ENTRYPOINT", async () => {
    const repl = await call('POST', '/v1/capsules', { image: `${reg.host}/wrenn-test/musl:repl`, timeout_sec: 300 });
    assert.equal(repl.status, 201, repl.text);
    capsules.push(repl.body.id);
    assert.equal((await exec(repl.body.id, 'echo alive; echo "EP=$EP"')).stdout, 'alive\nEP=\n');
    const state = await call('GET', `/v1/capsules/${repl.body.id}`);
    assert.equal(state.body.state, 'running', state.text);

    // Shell-form CMD: Docker runs ENTRYPOINT + [/bin/sh -c <text>], so the entrypoint's EP is set.
    await build(
      'over-entrypoint',
      `FROM ${reg.host}/wrenn-test/musl:repl\nCMD echo "$EP" > /tmp/composed; exec sleep 3600\n`,
    );
    const c = await call('POST', '/v1/capsules', { template: 'over-entrypoint', timeout_sec: 300 });
    assert.equal(c.status, 201, c.text);
    capsules.push(c.body.id);
    let composed = '';
    for (let i = 0; i < 300 && !composed; i++) {
      composed = (await exec(c.body.id, 'cat /tmp/composed 2>/dev/null || true')).stdout;
      if (!composed) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(
      composed,
      'from-entrypoint\n',
      `no /tmp/composed after 30 s; processes:\n${await processes(c.body.id)}`,
    );
    const ps = await processes(c.body.id);
    assert.match(ps, /sleep 3600/, ps);
  });

  it('a Dockerfile build FROM an image is answered at once and logs the pull while its layers arrive', async () => {
    const gate = await startGatedRegistry(reg);
    try {
      // A layer no earlier test pulled, held half-way by the proxy.
      await pushMuslImage(reg, 'wrenn-test/musl', 'gated', [
        { name: 'app/unique.bin', content: randomBytes(256 * 1024), uid: 1000, gid: 1000 },
      ]);
      gate.hold();
      const start = await call('POST', '/v1/templates', {
        name: 'gated',
        dockerfile: `FROM ${gate.host}/wrenn-test/musl:gated\nRUN wc -c < /app/unique.bin > /app/size\n`,
      });
      assert.equal(start.status, 202, start.text);
      const during = await waitFor('the held pull in the build log', async () => {
        const b = (await call('GET', `/v1/templates/builds/${start.body.build_id}`)).body as Build;
        if (gate.held > 0 && /pulling .*musl:gated \(manifest [0-9a-f]{12}\)/.test(b.logs)) return b;
        throw new Error(`held ${gate.held}, build ${b.status}, log:\n${b.logs}`);
      });
      assert.equal(during.status, 'building', during.logs);
      assert.doesNotMatch(during.logs, /layer 2\/2/, during.logs);
      gate.release();
      const done = await buildDone(start.body.build_id);
      assert.match(done.logs, /layer 2\/2 [0-9a-f]{12}: [\d.]+ MiB pulled and unpacked/, done.logs);
      const c = await call('POST', '/v1/capsules', { template: 'gated', timeout_sec: 300 });
      assert.equal(c.status, 201, c.text);
      capsules.push(c.body.id);
      assert.equal((await exec(c.body.id, 'cat /app/size')).stdout.trim(), String(256 * 1024));
    } finally {
      await gate.stop();
    }
  });

  it('`wrenn capsule create --image` shows the pull (POST /v1/images/pull) while the layers arrive', async () => {
    const missing = await call('POST', '/v1/images/pull', { image: `${reg.host}/wrenn-test/nope:v1` });
    assert.equal(missing.status, 404, missing.text);
    const bad = await call('POST', '/v1/images/pull', { image: 'Not A Reference' });
    assert.equal(bad.status, 400, bad.text);
    const gate = await startGatedRegistry(reg);
    // A layer no earlier test pulled, held half-way by the proxy.
    await pushMuslImage(reg, 'wrenn-test/musl', 'gated-cli', [
      { name: 'app/unique.bin', content: randomBytes(128 * 1024), uid: 1000, gid: 1000 },
    ]);
    gate.hold();
    const env = { ...process.env, WRENN_BASE_URL: sys.url, WRENN_API_KEY: sys.adminKey, HOME: sys.dataDir };
    const cli = spawn(
      process.execPath,
      [WRENN, 'capsule', 'create', '--image', `${gate.host}/wrenn-test/musl:gated-cli`, '--timeout', '300'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    cli.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => cli.on('close', (code) => res(code)));
    try {
      await waitFor('the pull line on the CLI while the layer is held', async () => {
        if (gate.held > 0 && /pulling .*musl:gated-cli \(manifest [0-9a-f]{12}\)/.test(stderr)) return true;
        throw new Error(`held ${gate.held}, CLI stderr:\n${stderr}`);
      });
      assert.equal(stdout, '', 'no capsule before the pull is done');
      gate.release();
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /layer 2\/2 [0-9a-f]{12}: [\d.]+ MiB pulled and unpacked/, stderr);
      const id = stdout.trim();
      capsules.push(id);
      assert.equal((await exec(id, 'wc -c < /app/unique.bin')).stdout.trim(), String(128 * 1024));
    } finally {
      cli.kill();
      await gate.stop();
    }
  });
});
