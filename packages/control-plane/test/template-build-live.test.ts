// Templates built from a Dockerfile against a live `wrenn up` (real namespace capsules): a Python
// package copied from the build context and installed with pip from that copy (no network), ENV,
// WORKDIR, COPY --chown, a start command with a ready check; the layer cache on a rebuild (sent as
// multipart with a tar context); a failing RUN; malformed Dockerfiles. `base` comes from the
// shared template cache (debootstrap on first use).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type LiveSystem, SHARED_IMAGES, startLive } from './e2b-live.js';
import { client } from './native-helpers.js';
import { follow } from './template-build-helpers.js';
import { tarOf } from './uploads.js';

type Call = ReturnType<typeof client>;

const SLOT = 15;

const CONTEXT: Record<string, string> = {
  'pkg/pyproject.toml': [
    '[build-system]',
    'requires = ["setuptools"]',
    'build-backend = "setuptools.build_meta"',
    '',
    '[project]',
    'name = "wrenn-hello"',
    'version = "0.1.0"',
    '',
    '[tool.setuptools]',
    'packages = ["wrenn_hello"]',
    '',
  ].join('\n'),
  'pkg/wrenn_hello/__init__.py': 'def greet():\n    return "hello from wrenn_hello"\n',
  'notes.txt': 'notes for the user\n',
};

const DOCKERFILE = `# A template with a local Python package
FROM base
ENV GREETING="hello from the template" \\
    APP_HOME=/opt/app
WORKDIR $APP_HOME
COPY pkg/ ./pkg/
RUN pip install --no-index --no-build-isolation --break-system-packages ./pkg \\
 && python3 -c "import wrenn_hello; print('installed:', wrenn_hello.greet())"
COPY --chown=user:user notes.txt /home/user/notes.txt
CMD ["python3", "-m", "http.server", "8123", "--bind", "127.0.0.1"]
# wrenn:ready python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8123/')"
`;

const b64 = (files: Record<string, string>) =>
  Object.fromEntries(Object.entries(files).map(([p, t]) => [p, Buffer.from(t).toString('base64')]));

describe('templates built from a Dockerfile (live)', () => {
  let sys: LiveSystem;
  let call: Call;
  const capsules: string[] = [];

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES });
    call = client(sys.url, sys.adminKey);
  });
  after(async () => {
    if (!sys) return;
    try {
      for (const id of capsules) await call('DELETE', `/v1/capsules/${id}`).catch(() => undefined);
    } finally {
      await sys.close();
    }
  });

  const exec = async (id: string, cmd: string) => {
    const r = await call('POST', `/v1/capsules/${id}/exec`, { cmd });
    assert.equal(r.status, 200, r.text);
    return r.body as { stdout: string; stderr: string; exit_code: number };
  };

  it('builds a template with a pip-installed local package, ENV, WORKDIR and a started server', async () => {
    const start = await call('POST', '/v1/templates', { name: 'py-app', dockerfile: DOCKERFILE, files: b64(CONTEXT) });
    assert.equal(start.status, 202, start.text);
    assert.match(start.body.build_id, /^bld-/);
    const { streamed, build } = await follow(sys, call, start.body.build_id);
    assert.equal(build.status, 'ready', `build failed: ${build.error}\n${build.logs}`);
    assert.match(streamed, /Step 4\/7 : RUN pip install/);
    assert.match(streamed, /installed: hello from wrenn_hello/);
    assert.match(streamed, /Template 'py-app' is ready/);
    assert.equal(build.logs, streamed);

    const created = await call('POST', '/v1/capsules', { template: 'py-app', timeout_sec: 600 });
    assert.equal(created.status, 201, created.text);
    const id = created.body.id as string;
    capsules.push(id);
    assert.equal(
      (await exec(id, 'python3 -c "import wrenn_hello; print(wrenn_hello.greet())"')).stdout,
      'hello from wrenn_hello\n',
    );
    assert.equal((await exec(id, 'echo "$GREETING|$APP_HOME"')).stdout, 'hello from the template|/opt/app\n');
    assert.equal((await exec(id, 'pwd')).stdout, '/opt/app\n');
    assert.equal(
      (await exec(id, 'stat -c %U:%G /home/user/notes.txt && cat /home/user/notes.txt')).stdout,
      'user:user\nnotes for the user\n',
    );
    // The start command runs from WORKDIR, so its listing shows the copied package; the ready
    // check passed before create returned, so it answers at once.
    const listing = await exec(
      id,
      `python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8123/').read().decode())"`,
    );
    assert.equal(listing.exit_code, 0, listing.stderr);
    assert.match(listing.stdout, /pkg\//);
    // A variable given at create wins over the template's.
    const over = await call('POST', '/v1/capsules', { template: 'py-app', env: { GREETING: 'mine' } });
    assert.equal(over.status, 201, over.text);
    capsules.push(over.body.id);
    assert.equal((await exec(over.body.id, 'echo "$GREETING"')).stdout, 'mine\n');
  });

  it('reuses every cached layer when the same build is sent again (multipart with a tar context)', async () => {
    const form = new FormData();
    form.set('name', 'py-app');
    form.set('dockerfile', DOCKERFILE);
    form.set(
      'context',
      new Blob([await tarOf(Object.entries(CONTEXT).map(([name, body]) => ({ name, body })))]),
      'context.tar',
    );
    // The template being replaced must not be in use.
    for (const id of capsules.splice(0)) await call('DELETE', `/v1/capsules/${id}`);
    const t0 = Date.now();
    const res = await fetch(`${sys.url}/v1/templates`, {
      method: 'POST',
      headers: { 'x-api-key': sys.adminKey },
      body: form,
    });
    const text = await res.text();
    assert.equal(res.status, 202, text);
    const { build } = await follow(sys, call, JSON.parse(text).build_id);
    assert.equal(build.status, 'ready', `rebuild failed: ${build.error}\n${build.logs}`);
    for (const step of ['COPY pkg/', 'RUN pip install', 'COPY --chown']) {
      assert.match(
        build.logs,
        new RegExp(`: ${step.replace(/[/]/g, '\\/')}[^\\n]*\\n ---> cached`),
        `step '${step}' was not cached:\n${build.logs}`,
      );
    }
    assert.doesNotMatch(build.logs, /installed: hello/);
    console.log(`# rebuild with every layer cached took ${Date.now() - t0} ms`);
    const created = await call('POST', '/v1/capsules', { template: 'py-app' });
    assert.equal(created.status, 201, created.text);
    capsules.push(created.body.id);
    assert.equal(
      (await exec(created.body.id, 'python3 -c "import wrenn_hello; print(wrenn_hello.greet())"')).stdout,
      'hello from wrenn_hello\n',
    );
  });

  it('takes context files as multipart file parts named by their path (FROM minimal, start command and HEALTHCHECK)', async () => {
    const form = new FormData();
    form.set('name', 'parts');
    form.set(
      'dockerfile',
      'FROM minimal\nCOPY sub/dir/a.txt conf/b.txt /srv/\nUSER user\nRUN cat /srv/a.txt /srv/b.txt > /tmp/both\nUSER root\nWORKDIR /srv\nCMD ["sh", "-c", "sleep 1; touch /tmp/started; exec sleep 600"]\nHEALTHCHECK --interval=1s CMD test -e /tmp/started\n',
    );
    form.append('files', new Blob(['alpha\n']), 'sub/dir/a.txt');
    form.append('files', new Blob(['beta\n']), 'conf/b.txt');
    const res = await fetch(`${sys.url}/v1/templates`, {
      method: 'POST',
      headers: { 'x-api-key': sys.adminKey },
      body: form,
    });
    const text = await res.text();
    assert.equal(res.status, 202, text);
    const { build } = await follow(sys, call, JSON.parse(text).build_id);
    assert.equal(build.status, 'ready', `build failed: ${build.error}\n${build.logs}`);
    const created = await call('POST', '/v1/capsules', { template: 'parts' });
    assert.equal(created.status, 201, created.text);
    capsules.push(created.body.id);
    // USER applies to RUN as it comes, and the last one to the start command and the capsule's
    // commands; the ready check waited for the start command.
    assert.equal(
      (await exec(created.body.id, 'cat /tmp/both && whoami && stat -c %U /tmp/both && stat -c %U /tmp/started && pwd'))
        .stdout,
      'alpha\nbeta\nroot\nuser\nroot\n/srv\n',
    );
    // Hibernated (processes stopped, envd restarted on resume): USER and WORKDIR still apply.
    const paused = await call('POST', `/v1/capsules/${created.body.id}/pause`, { mode: 'hibernate' });
    assert.equal(paused.status, 200, paused.text);
    assert.equal(paused.body.state, 'hibernated');
    const resumed = await call('POST', `/v1/capsules/${created.body.id}/resume`, {});
    assert.equal(resumed.status, 200, resumed.text);
    assert.equal((await exec(created.body.id, 'whoami && pwd')).stdout, 'root\n/srv\n');
  });

  it('fails capsule creation when the ready check never passes, leaving no capsule; logs stream as SSE', async () => {
    const dockerfile = 'FROM minimal\nCMD ["sleep", "600"]\nHEALTHCHECK --start-period=2s CMD test -e /never\n';
    const start = await call('POST', '/v1/templates', { name: 'never-ready', dockerfile });
    assert.equal(start.status, 202, start.text);
    const sse = await fetch(`${sys.url}/v1/templates/builds/${start.body.build_id}/logs`, {
      headers: { 'x-api-key': sys.adminKey, accept: 'text/event-stream' },
    });
    assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = await sse.text();
    assert.match(events, /^event: log\ndata: \{"text":"Building template 'never-ready'/);
    assert.match(events, /event: end\ndata: \{"status":"ready","error":null\}\n\n$/);
    const created = await call('POST', '/v1/capsules', { template: 'never-ready' });
    assert.equal(created.status, 504, created.text);
    assert.equal(created.body.error.code, 'capsule_not_ready');
    assert.match(created.body.error.message, /test -e \/never' did not pass within 2\.0 s/);
    const list = await call('GET', '/v1/capsules?template=never-ready');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.capsules, []);
  });

  it('runs two builds of the same steps at once; both finish, sharing or making the layers', async () => {
    const dockerfile =
      'FROM minimal\nRUN sleep 0.5 && echo one > /one\nRUN echo two > /two\nRUN cat /one /two > /both\n';
    const [a, b] = await Promise.all(
      ['conc-a', 'conc-b'].map((name) => call('POST', '/v1/templates', { name, dockerfile })),
    );
    assert.equal(a!.status, 202, a!.text);
    assert.equal(b!.status, 202, b!.text);
    const builds = await Promise.all([a!, b!].map((r) => follow(sys, call, r.body.build_id)));
    for (const { build } of builds) assert.equal(build.status, 'ready', `build failed: ${build.error}\n${build.logs}`);
    for (const name of ['conc-a', 'conc-b']) {
      const created = await call('POST', '/v1/capsules', { template: name });
      assert.equal(created.status, 201, created.text);
      capsules.push(created.body.id);
      assert.equal((await exec(created.body.id, 'cat /both')).stdout, 'one\ntwo\n');
    }
  });

  it('fails a build whose RUN fails, with its output and exit code, leaving no capsule', async () => {
    const dockerfile =
      'FROM minimal\nENV WHO=wrenn\nRUN echo "building for $WHO"\nRUN echo "about to fail" && echo "broken step" >&2 && exit 7\nRUN echo never\n';
    const start = await call('POST', '/v1/templates', { name: 'broken', dockerfile });
    assert.equal(start.status, 202, start.text);
    const { streamed, build } = await follow(sys, call, start.body.build_id);
    assert.equal(build.status, 'error');
    assert.match(build.error, /step 3\/4 \(line 4\)/);
    assert.match(build.error, /exit code 7/);
    assert.match(build.error, /broken step/);
    assert.match(streamed, /building for wrenn/);
    assert.match(streamed, /about to fail/);
    assert.doesNotMatch(streamed, /Step 4\/4/);
    const list = await call('GET', `/v1/capsules?metadata=wrenn.build:${start.body.build_id}`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.capsules, []);
    const tpls = await call('GET', '/v1/templates');
    assert.equal(tpls.status, 200, tpls.text);
    assert.ok(
      !tpls.body.templates.some((t: { name: string }) => t.name === 'broken'),
      'a failed build must not leave a template',
    );
  });

  it('prunes build layers once no template is built on them', async () => {
    for (const id of capsules.splice(0)) await call('DELETE', `/v1/capsules/${id}`);
    const layers = async () =>
      (
        await sys.cp.ctx.database.db.selectFrom('templates').select('name').where('name', 'like', 'layer-%').execute()
      ).map((r) => r.name);
    const before = await layers();
    assert.ok(before.length >= 4, `expected the builds' layers, got ${before.join(', ')}`);
    // While templates stack on them, layers are kept.
    const kept = await call('DELETE', '/v1/templates/builds/cache');
    assert.equal(kept.status, 200, kept.text);
    assert.ok(kept.body.kept.length > 0, kept.text);
    for (const name of ['py-app', 'parts', 'never-ready', 'conc-a', 'conc-b']) {
      const del = await call('DELETE', `/v1/templates/${name}`);
      assert.equal(del.status, 204, `${name}: ${del.text}`);
    }
    const pruned = await call('DELETE', '/v1/templates/builds/cache');
    assert.equal(pruned.status, 200, pruned.text);
    assert.deepEqual(pruned.body.kept, []);
    assert.deepEqual([...pruned.body.deleted, ...kept.body.deleted].sort(), before.sort());
    assert.deepEqual(await layers(), []);
  });

  it('refuses malformed Dockerfiles and bad requests with a 400 naming the line', async () => {
    const bad = await call('POST', '/v1/templates', {
      name: 'bad',
      dockerfile: 'FROM base\nRUN echo hi\nFROBNICATE now\n',
    });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.body.error.message, /line 3/);
    assert.match(bad.body.error.message, /FROBNICATE/);
    const missing = await call('POST', '/v1/templates', {
      name: 'bad',
      dockerfile: 'FROM base\n\nCOPY nothere.txt /x\n',
    });
    assert.equal(missing.status, 400, missing.text);
    assert.match(missing.body.error.message, /line 3: COPY source 'nothere\.txt' is not in the build context/);
    const noFrom = await call('POST', '/v1/templates', { name: 'bad', dockerfile: 'FROM no-such-template\n' });
    assert.equal(noFrom.status, 404, noFrom.text);
    assert.match(noFrom.body.error.message, /line 1/);
    const name = await call('POST', '/v1/templates', { name: 'Bad Name', dockerfile: 'FROM base\n' });
    assert.equal(name.status, 400, name.text);
    assert.match(name.body.error.message, /template name/);
    const builtin = await call('POST', '/v1/templates', { name: 'base', dockerfile: 'FROM minimal\n' });
    assert.equal(builtin.status, 409, builtin.text);
    const escaping = await call('POST', '/v1/templates', {
      name: 'bad',
      dockerfile: 'FROM base\n',
      files: { '../x': 'aGk=' },
    });
    assert.equal(escaping.status, 400, escaping.text);
    const noDockerfile = await call('POST', '/v1/templates', { name: 'bad' });
    assert.equal(noDockerfile.status, 400, noDockerfile.text);
    assert.match(noDockerfile.body.error.message, /dockerfile is required/);
    const listed = await call('GET', '/v1/templates/builds?template=py-app');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(
      listed.body.builds.map((b: { template: string; status: string }) => [b.template, b.status]),
      [
        ['py-app', 'ready'],
        ['py-app', 'ready'],
      ],
    );
    const form = new FormData();
    form.set('name', 'bad');
    form.set('bogus', 'x');
    form.set('dockerfile', 'FROM minimal\n');
    const multipart = await fetch(`${sys.url}/v1/templates`, {
      method: 'POST',
      headers: { 'x-api-key': sys.adminKey },
      body: form,
    });
    assert.equal(multipart.status, 400);
    assert.match(await multipart.text(), /unknown field 'bogus'/);
    const unknown = await call('GET', '/v1/templates/builds/bld-doesnotexist');
    assert.equal(unknown.status, 404, unknown.text);
  });
});
