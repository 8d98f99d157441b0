// ARG and multi-stage Dockerfiles against a live `wrenn up` (real namespace capsules, FROM
// minimal: busybox): ARG defaults and --build-arg overrides, COPY --from a stage (owners, modes,
// symlinks and nested files kept; a wildcard with --chown/--chmod) and from a template, an unused stage never built, the layer
// cache on a rebuild with the same arguments, and build errors naming the line.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type LiveSystem, SHARED_IMAGES, startLive } from './e2b-live.js';
import { client } from './native-helpers.js';
import { follow } from './template-build-helpers.js';

const SLOT = 13;
// A name that is no template is tried as a Docker Hub image: send those pulls to a closed loopback
// port, so a mistyped stage fails fast and no traffic leaves the machine.
process.env.WRENN_REGISTRY_MIRROR ??= 'http://127.0.0.1:9';

const DOCKERFILE = `ARG GREETING=hello
FROM minimal AS build
ARG GREETING
ARG WHO=world
RUN mkdir -p /out/sub && echo "$GREETING $WHO" > /out/msg.txt && chown 1000:1000 /out/msg.txt \\
 && chmod 0640 /out/msg.txt && ln -s msg.txt /out/link && echo nested > /out/sub/n.txt

FROM minimal AS unused
RUN echo never-built-marker

FROM minimal
ARG WHO=final
ENV WHO_ENV=$WHO
COPY --from=build /out /app
COPY --from=build /out/link /single.txt
COPY --from=minimal /etc/os-release /from-template/
COPY --from=build --chown=1234:1234 --chmod=0600 /out/sub/*.txt /globbed/
`;

describe('ARG and multi-stage template builds (live)', () => {
  let sys: LiveSystem;
  let call: ReturnType<typeof client>;
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

  const build = async (body: Record<string, unknown>) => {
    const start = await call('POST', '/v1/templates', body);
    assert.equal(start.status, 202, start.text);
    return (await follow(sys, call, start.body.build_id)).build;
  };
  const run = async (template: string, cmd: string) => {
    const created = await call('POST', '/v1/capsules', { template, timeout_sec: 300 });
    assert.equal(created.status, 201, created.text);
    capsules.push(created.body.id);
    const r = await call('POST', `/v1/capsules/${created.body.id}/exec`, { cmd });
    assert.equal(r.status, 200, r.text);
    await call('DELETE', `/v1/capsules/${capsules.pop()}`);
    return r.body as { stdout: string; stderr: string; exit_code: number };
  };
  const CHECK =
    'cat /app/msg.txt; stat -c "%u:%g %a" /app/msg.txt; readlink /app/link; cat /app/sub/n.txt; cat /single.txt;' +
    ' grep -o ID=wrenn-minimal /from-template/os-release; echo "$WHO_ENV"; ls /app;' +
    ' stat -c "%u:%g %a %n" /globbed/*';

  it('builds only the needed stages with ARG defaults; COPY --from keeps owners, modes and symlinks', async () => {
    const b = await build({ name: 'staged', dockerfile: DOCKERFILE });
    assert.equal(b.status, 'ready', `build failed: ${b.error}\n${b.logs}`);
    assert.match(b.logs, /Skipping stage 'unused': the final stage does not use it/);
    assert.doesNotMatch(b.logs, /never-built-marker/);
    assert.match(b.logs, /Step 3\/9 : RUN mkdir/);
    assert.match(b.logs, /copied \/out from stage 'build'/);
    const r = await run('staged', CHECK);
    assert.equal(r.exit_code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'hello world\n1000:1000 640\nmsg.txt\nnested\nhello world\nID=wrenn-minimal\nfinal\nlink\nmsg.txt\nsub\n1234:1234 600 /globbed/n.txt\n',
    );
  });

  it('takes build arguments over ARG defaults, and reuses every layer when they do not change', async () => {
    const args = { GREETING: 'hi', WHO: 'there' };
    const b = await build({ name: 'staged', dockerfile: DOCKERFILE, build_args: args });
    assert.equal(b.status, 'ready', `build failed: ${b.error}\n${b.logs}`);
    assert.doesNotMatch(b.logs, /RUN mkdir[^\n]*\n ---> cached/, 'the RUN that uses the ARGs runs again');
    const r = await run('staged', CHECK);
    assert.equal(
      r.stdout,
      'hi there\n1000:1000 640\nmsg.txt\nnested\nhi there\nID=wrenn-minimal\nthere\nlink\nmsg.txt\nsub\n1234:1234 600 /globbed/n.txt\n',
    );

    const again = await build({ name: 'staged', dockerfile: DOCKERFILE, build_args: args });
    assert.equal(again.status, 'ready', `rebuild failed: ${again.error}\n${again.logs}`);
    for (const step of [
      'RUN mkdir',
      'COPY --from=build /out /app',
      'COPY --from=build /out/link',
      'COPY --from=minimal',
      'COPY --from=build --chown',
    ])
      assert.match(
        again.logs,
        new RegExp(`: ${step.replace(/[/]/g, '\\/')}[^\\n]*\\n ---> cached`),
        `'${step}' was not cached:\n${again.logs}`,
      );
    assert.doesNotMatch(again.logs, /copied /);
  });

  it('streams a large COPY --from (48 MiB of random bytes) intact', async () => {
    const b = await build({
      name: 'staged-big',
      dockerfile:
        'FROM minimal AS big\nRUN dd if=/dev/urandom of=/big.bin bs=1M count=48 2>/dev/null && md5sum /big.bin > /big.md5\n' +
        'FROM minimal\nCOPY --from=big /big.bin /big.md5 /data/\n',
    });
    assert.equal(b.status, 'ready', `build failed: ${b.error}\n${b.logs}`);
    const r = await run(
      'staged-big',
      'md5sum /data/big.bin | cut -d" " -f1; cut -d" " -f1 /data/big.md5; stat -c %s /data/big.bin',
    );
    const [got, want, size] = r.stdout.trim().split('\n');
    assert.equal(size, String(48 * 1024 * 1024));
    assert.equal(got, want, 'the copied file differs from the one made in the stage');
    assert.equal((await call('DELETE', '/v1/templates/staged-big')).status, 204);
  });

  it('reports bad ARG and stage names with their line, and a missing COPY --from path as a failed step', async () => {
    const badArg = await call('POST', '/v1/templates', { name: 'bad', dockerfile: 'FROM minimal\n\nARG 2x=1\n' });
    assert.equal(badArg.status, 400, badArg.text);
    assert.match(badArg.body.error.message, /Dockerfile line 3: ARG '2x' is not a valid name/);
    const badStage = await call('POST', '/v1/templates', {
      name: 'bad',
      dockerfile: 'FROM minimal\nCOPY --from=nosuch /a /b\n',
    });
    assert.equal(badStage.status, 404, badStage.text);
    assert.match(
      badStage.body.error.message,
      /Dockerfile line 2: COPY --from=nosuch: no template 'nosuch' in this team/,
    );
    const later = await call('POST', '/v1/templates', {
      name: 'bad',
      dockerfile: 'FROM minimal\nCOPY --from=b /a /b\nFROM minimal AS b\n',
    });
    assert.equal(later.status, 400, later.text);
    assert.match(later.body.error.message, /line 2: COPY --from=b: stage 'b' is defined later/);
    const badArgs = await call('POST', '/v1/templates', {
      name: 'bad',
      dockerfile: 'FROM minimal\n',
      build_args: { 'not-a-name': 'x' },
    });
    assert.equal(badArgs.status, 400, badArgs.text);
    assert.match(badArgs.body.error.message, /build_args key 'not-a-name'/);
    const missing = await build({
      name: 'bad',
      dockerfile: 'FROM minimal AS s\nFROM minimal\nCOPY --from=s /no/such/file /x\n',
    });
    assert.equal(missing.status, 'error');
    assert.match(missing.error, /line 3\) COPY --from: '\/no\/such\/file' does not exist in stage 's'/);
  });
});
