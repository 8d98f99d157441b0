// The e2b SDK's Template builder against a live Wrenn (real namespace capsules, `base` from the
// shared template cache): Template.build of fromTemplate('base') with copy of a local folder,
// setEnvs, setWorkdir, runCmd (as the build user and as root), setUser and setStartCmd with a
// ready command; then Sandbox.create(name) runs a command in it and reaches the start command's
// server through the proxy. A second build reuses every cached step and uploads nothing;
// skipCache reruns them. Tags: name:tag builds, an older tagged build kept for Sandbox.create
// (name:tag), assign/get/remove tags, delete with its tags. Bad requests get E2B-shaped errors.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { haveRegistry, pushMuslImage, startRegistry, type TestRegistry } from '@wrenn/host-agent/testing/oci';
import { type LogEntry, Sandbox, Template, type TemplateClass } from 'e2b';
import { getViaHost, type LiveSystem, SHARED_IMAGES, startLive, waitFor } from './e2b-live.js';

const SLOT = 15;
const NAME = 'sdk-app';
const READY = `python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/')"`;

describe('e2b SDK Template.build (live)', () => {
  let sys: LiveSystem;
  let contextDir: string;
  let reg: TestRegistry | undefined;
  const imageDirs: string[] = [];
  const sandboxes: Sandbox[] = [];

  before(async () => {
    contextDir = mkdtempSync(join(tmpdir(), 'wrenn-e2b-tpl-'));
    mkdirSync(join(contextDir, 'site', 'sub'), { recursive: true });
    writeFileSync(join(contextDir, 'site', 'index.html'), '<h1>hello from the template</h1>\n');
    writeFileSync(join(contextDir, 'site', 'sub', 'data.txt'), 'nested file\n');
    sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES });
  });
  after(async () => {
    for (const s of sandboxes) await s.kill().catch(() => undefined);
    rmSync(contextDir, { recursive: true, force: true });
    if (!sys) return;
    try {
      // The image's host template went into the shared cache too: it is this test's, remove it.
      const images = await sys.cp.ctx.database.db
        .selectFrom('templates')
        .select('name')
        .where('kind', '=', 'image')
        .execute();
      imageDirs.push(...images.map((r) => join(SHARED_IMAGES, `oci-${r.name.slice('img-'.length)}`)));
    } finally {
      await sys.close();
      await reg?.stop();
      for (const d of imageDirs) rmSync(d, { recursive: true, force: true });
    }
  });

  const template = () =>
    Template({ fileContextPath: contextDir })
      .fromTemplate('base')
      .setEnvs({ GREETING: 'hello from setEnvs' })
      .setWorkdir('/home/user/app')
      .copy('site', 'site')
      .runCmd('echo "$GREETING as $(whoami) in $(pwd)" > made.txt')
      .runCmd('id -un > /opt/made-by-root', { user: 'root' })
      .setUser('user')
      .setStartCmd('python3 -m http.server 8080 --bind 127.0.0.1 --directory /home/user/app/site', READY);

  it('builds fromTemplate(base) with copy, setEnvs, setWorkdir, runCmd, setUser and a start command', async () => {
    const logs: string[] = [];
    const info = await Template.build(template(), NAME, {
      ...sys.sdk(),
      cpuCount: 2,
      memoryMB: 768,
      onBuildLogs: (e: LogEntry) => logs.push(e.message),
    });
    assert.equal(info.templateId, NAME);
    const text = logs.join('\n');
    assert.match(text, /Uploaded 'site'/);
    assert.match(text, /Template 'sdk-app' is ready/);

    const sbx = await Sandbox.create(NAME, { ...sys.sdk(), timeoutMs: 600_000 });
    sandboxes.push(sbx);
    // The build's cpuCount/memoryMB are the template's: its sandboxes get them (as E2B).
    const shape = await sbx.getInfo();
    assert.deepEqual([shape.cpuCount, shape.memoryMB], [2, 768]);
    const made = await sbx.commands.run('cat made.txt && pwd && whoami && echo "$GREETING" && cat /opt/made-by-root');
    assert.equal(
      made.stdout,
      'hello from setEnvs as user in /home/user/app\n/home/user/app\nuser\nhello from setEnvs\nroot\n',
    );
    const copied = await sbx.commands.run('stat -c %U site/index.html && cat site/sub/data.txt');
    assert.equal(copied.stdout, 'user\nnested file\n');
    // The ready command passed before create returned: the start command's server answers.
    const r = await waitFor(
      'the start command server through the proxy',
      async () => {
        const res = await getViaHost(sys.url, sbx.getHost(8080), '/index.html');
        return res.status === 200 ? res : undefined;
      },
      20_000,
    );
    assert.equal(r.body, '<h1>hello from the template</h1>\n');

    assert.equal(await Template.exists(NAME, sys.sdk()), true);
    assert.equal(await Template.exists('sdk-never-built', sys.sdk()), false);
    const tags = await Template.getTags(NAME, sys.sdk());
    assert.deepEqual(
      tags.map((t) => t.tag),
      ['default'],
    );
  });

  it('keeps tagged builds: name:tag builds, Sandbox.create(name:tag), assign/get/remove tags, delete', async () => {
    for (const s of sandboxes.splice(0)) await s.kill();
    const versioned = (v: string) => Template().fromTemplate('base').runCmd(`echo ${v} > /tmp/version.txt`);
    const v1 = await Template.build(versioned('one'), 'sdk-tagged:v1', sys.sdk());
    const v2 = await Template.build(versioned('two'), 'sdk-tagged:v2', sys.sdk());
    assert.notEqual(v1.buildId, v2.buildId);
    const versionOf = async (ref: string) => {
      const sbx = await Sandbox.create(ref, { ...sys.sdk(), timeoutMs: 300_000 });
      try {
        return (await sbx.commands.run('cat /tmp/version.txt')).stdout.trim();
      } finally {
        await sbx.kill();
      }
    };
    // The older tagged build outlived the newer build of its name; no tag means the latest.
    assert.equal(await versionOf('sdk-tagged:v1'), 'one');
    assert.equal(await versionOf('sdk-tagged:v2'), 'two');
    assert.equal(await versionOf('sdk-tagged'), 'two');
    assert.equal(await versionOf('sdk-tagged:default'), 'two');

    const assigned = await Template.assignTags('sdk-tagged:v1', ['prod', 'stable'], sys.sdk());
    assert.equal(assigned.buildId, v1.buildId);
    assert.deepEqual(assigned.tags, ['prod', 'stable']);
    assert.equal(await versionOf('sdk-tagged:prod'), 'one');
    const listed = await Template.getTags('sdk-tagged', sys.sdk());
    assert.deepEqual(
      listed
        .map((t) => `${t.tag}=${t.buildId === v1.buildId ? 'v1' : t.buildId === v2.buildId ? 'v2' : t.buildId}`)
        .sort(),
      ['default=v2', 'prod=v1', 'stable=v1', 'v1=v1', 'v2=v2'],
    );
    assert.ok(listed.every((t) => t.createdAt instanceof Date && !Number.isNaN(t.createdAt.getTime())));
    await assert.rejects(Template.assignTags('sdk-tagged:v1', ':bad', sys.sdk()), /tag ':bad' is not valid/);
    await assert.rejects(Template.assignTags('sdk-tagged:v1', 'sdk-tagged:', sys.sdk()), /is not valid/);
    await assert.rejects(Template.assignTags('sdk-tagged:nope', 'x', sys.sdk()), /no tag 'nope'/);
    await assert.rejects(Template.removeTags('sdk-never-built', ['x'], sys.sdk()), /not found/);
    await assert.rejects(Template.removeTags('sdk-tagged', ['default'], sys.sdk()), /latest build/);

    // Removing the last tags of v1 drops its kept template; the name's latest build stays.
    const kept = () =>
      sys.cp.ctx.database.db.selectFrom('templates').select('name').where('name', 'like', 'kept-%').execute();
    assert.deepEqual(
      (await kept()).map((r) => r.name),
      [`kept-${v1.buildId}`],
    );
    await Template.removeTags('sdk-tagged', ['v1', 'prod'], sys.sdk());
    assert.equal((await kept()).length, 1, 'stable still points at v1');
    await Template.removeTags('sdk-tagged', 'stable', sys.sdk());
    assert.equal((await kept()).length, 0);
    await assert.rejects(Sandbox.create('sdk-tagged:v1', sys.sdk()), /no tag 'v1'/);
    assert.equal(await versionOf('sdk-tagged:v2'), 'two');

    // A third build tagged v3 moves nothing else; deleting the template deletes its tags and kept builds.
    await Template.build(versioned('three'), 'sdk-tagged:v3', sys.sdk());
    assert.deepEqual(
      (await kept()).map((r) => r.name),
      [`kept-${v2.buildId}`],
    );
    const { apiKey, apiUrl } = sys.sdk();
    const del = await fetch(`${apiUrl}/templates/sdk-tagged`, { method: 'DELETE', headers: { 'x-api-key': apiKey } });
    assert.equal(del.status, 204);
    assert.equal((await kept()).length, 0);
    const tagRows = await sys.cp.ctx.database.db.selectFrom('template_tags').selectAll().execute();
    assert.equal(tagRows.filter((r) => r.template === 'sdk-tagged').length, 0);
    await assert.rejects(Sandbox.create('sdk-tagged:v2', sys.sdk()), /not found|no tag/);
  });

  it('reuses cached steps and uploads on a second build; skipCache runs them again', async () => {
    for (const s of sandboxes.splice(0)) await s.kill();
    const logs: string[] = [];
    await Template.build(template(), NAME, { ...sys.sdk(), onBuildLogs: (e: LogEntry) => logs.push(e.message) });
    const text = logs.join('\n');
    assert.match(text, /Skipping upload of 'site', already cached/);
    assert.equal((text.match(/---> cached/g) ?? []).length, 3, text);
    assert.doesNotMatch(text, /---> done in/);

    const forced: string[] = [];
    await Template.build(template(), NAME, {
      ...sys.sdk(),
      skipCache: true,
      onBuildLogs: (e: LogEntry) => forced.push(e.message),
    });
    const ftext = forced.join('\n');
    assert.doesNotMatch(ftext, /---> cached/);
    assert.equal((ftext.match(/cache skipped/g) ?? []).length, 3, ftext);
  });

  it('builds fromImage(<image in a loopback registry>) with copy, setEnvs, runCmd and a start command', {
    skip: haveRegistry ? false : 'Debian docker-registry is not installed (scripts/setup.mjs installs it)',
  }, async () => {
    reg = await startRegistry();
    await pushMuslImage(reg, 'wrenn-test/musl', 'v1');
    const logs: string[] = [];
    const t = Template({ fileContextPath: contextDir })
      .fromImage(`${reg.host}/wrenn-test/musl:v1`)
      .setEnvs({ FROM_SDK: 'yes' })
      .copy('site/index.html', '/srv/www/index.html')
      .runCmd('echo "$GREETING/$FROM_SDK as $(id -un) in $(pwd)" > /tmp/built.txt')
      .setStartCmd('httpd -f -p 127.0.0.1:8081 -h /srv/www', 'wget -q -O /dev/null http://127.0.0.1:8081/index.html');
    await Template.build(t, 'sdk-from-image', { ...sys.sdk(), onBuildLogs: (e: LogEntry) => logs.push(e.message) });
    const text = logs.join('\n');
    assert.match(text, /Pulling .*wrenn-test\/musl:v1/);
    assert.match(text, /Image .*: 2 layers/);
    const sbx = await Sandbox.create('sdk-from-image', { ...sys.sdk(), timeoutMs: 300_000 });
    sandboxes.push(sbx);
    // The image's ENV and WORKDIR (/app) carry through; E2B's build user is `user`.
    const r = await sbx.commands.run('cat /tmp/built.txt; cat /app/hello.txt; stat -c %U /srv/www/index.html');
    assert.equal(r.stdout, 'hello image/yes as user in /app\nhi from the image\nuser\n');
    const served = await waitFor(
      "busybox httpd (the image template's start command) through the proxy",
      async () => {
        const res = await getViaHost(sys.url, sbx.getHost(8081), '/index.html');
        return res.status === 200 ? res : undefined;
      },
      20_000,
    );
    assert.equal(served.body, '<h1>hello from the template</h1>\n');
    // A missing image fails the build with the registry's answer, at E2B's step 'base'.
    await assert.rejects(
      Template.build(Template().fromImage(`${reg.host}/wrenn-test/nope:v1`), 'sdk-no-image', sys.sdk()),
      /nope/,
    );
    const noImage = await failure(Template().fromImage(`${reg.host}/wrenn-test/nope:v1`), 'sdk-no-image');
    assert.equal(noImage?.step, 'base', JSON.stringify(noImage));
  });

  /** Builds `t` in the background and waits for it to fail: the status's reason. */
  const failure = async (t: TemplateClass, name: string) => {
    const { templateId, buildId } = await Template.buildInBackground(t, name, sys.sdk());
    const status = await waitFor(
      `build ${buildId} to end`,
      async () => {
        const s = await Template.getBuildStatus({ templateId, buildId }, sys.sdk());
        return s.status === 'error' || s.status === 'ready' ? s : undefined;
      },
      120_000,
    );
    assert.equal(status.status, 'error', JSON.stringify(status));
    return status.reason;
  };

  it('fails a build whose command fails, with the output in the error and the step in reason.step', async () => {
    const second = await failure(
      Template().fromTemplate('base').runCmd('echo first').runCmd('echo second fails; exit 3'),
      'sdk-fails',
    );
    assert.equal(second?.step, '2', JSON.stringify(second));
    assert.match(second?.message ?? '', /exit code 3/);
    const t = Template().fromTemplate('base').runCmd('echo about to fail; exit 7');
    await assert.rejects(
      Template.build(t, 'sdk-fails', sys.sdk()),
      /failed to run command 'echo about to fail; exit 7': command failed: exit code 7[\s\S]*about to fail/,
    );
    const nobody = Template().fromTemplate('base').runCmd('whoami', { user: 'nobody-here' });
    await assert.rejects(
      Template.build(nobody, 'sdk-fails', sys.sdk()),
      /failed to run command 'whoami': command failed: unauthenticated: invalid username: 'nobody-here'/,
    );
  });

  it('refuses bad requests with E2B-shaped errors', async () => {
    const { apiKey, apiUrl } = sys.sdk();
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${apiUrl}${path}`, {
        method: 'POST',
        headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json().catch(() => null)) as { code: number; message: string } };
    };
    const bad = await post('/v3/templates', { name: 'Bad Name!' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 400);
    const tagged = await post('/v3/templates', { name: 'x', tags: ['v2', 'bad tag'] });
    assert.equal(tagged.status, 400);
    assert.match(tagged.body.message, /tag 'bad tag' is not valid/);

    const req = await post('/v3/templates', { name: 'sdk-bad', cpuCount: 1, memoryMB: 512 });
    assert.equal(req.status, 202);
    const { templateID, buildID } = req.body as unknown as { templateID: string; buildID: string };
    const start = (body: unknown) => post(`/v2/templates/${templateID}/builds/${buildID}`, body);
    assert.match(
      (await start({ fromTemplate: 'base', steps: [{ type: 'FETCH', args: [] }] })).body.message,
      /unknown step type 'FETCH'/,
    );
    assert.match(
      (
        await start({
          fromTemplate: 'base',
          steps: [{ type: 'COPY', args: ['../etc', 'x'], filesHash: 'a'.repeat(64) }],
        })
      ).body.message,
      /inside the context directory/,
    );
    assert.match(
      (await start({ fromTemplate: 'base', steps: [{ type: 'COPY', args: ['a', 'x'], filesHash: 'b'.repeat(64) }] }))
        .body.message,
      /were not uploaded/,
    );
    const missing = await start({ fromTemplate: 'no-such-template' });
    assert.equal(missing.status, 404);
    assert.match(missing.body.message, /no-such-template/);
    const other = await post(`/v2/templates/${templateID}/builds/bld-doesnotexist`, { fromTemplate: 'base' });
    assert.equal(other.status, 404);
  });
});
