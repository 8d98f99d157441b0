// Hostile probe for COPY --from (issue 19): a build stage plants symlinks to files of the host (a
// secret the test writes in /tmp and one in wrenn's own data dir), to /etc/shadow by absolute,
// relative and /proc/1/root paths, and inside a copied directory; the final stage copies them.
// Every path must resolve inside the stage's own root: the host files are "not there" (the step
// fails), /etc/shadow is the stage's own, links inside a directory stay links, and no host byte
// reaches the template. Another team's template cannot be a --from source. The other team's
// capsule keeps working throughout.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { TwoTeams } from './two-teams.js';

let sys: TwoTeams;
// A name that is no template of the team is tried as a Docker Hub image: send that pull to a
// closed loopback port, so no traffic leaves the machine.
process.env.WRENN_REGISTRY_MIRROR ??= 'http://127.0.0.1:9';
const hostSecret = `/tmp/wrenn-copy-from-secret-${randomBytes(6).toString('hex')}`;
const hostValue = `host-secret-${randomBytes(12).toString('hex')}`;
let agentSecret = '';
const agentValue = `agent-secret-${randomBytes(12).toString('hex')}`;

before(async () => {
  writeFileSync(hostSecret, `${hostValue}\n`, { mode: 0o600 });
  sys = await TwoTeams.start();
  agentSecret = join(dirname(sys.live.up.adminKeyFile), `copy-from-secret-${randomBytes(6).toString('hex')}`);
  writeFileSync(agentSecret, `${agentValue}\n`, { mode: 0o600 });
});
after(async () => {
  rmSync(hostSecret, { force: true });
  if (agentSecret) rmSync(agentSecret, { force: true });
  await sys?.close();
});

/** Starts a build as `team` a and waits for its end; returns the build record. */
async function build(dockerfile: string, name: string) {
  const start = await sys.call(sys.a, 'POST', '/v1/templates', {
    name,
    dockerfile,
    build_args: { HOST_SECRET: hostSecret, AGENT_SECRET: agentSecret },
  });
  assert.equal(start.status, 202, start.text);
  const logs = await fetch(`${sys.url}/v1/templates/builds/${start.body.build_id}/logs`, {
    headers: { 'x-api-key': sys.a.key },
  });
  await logs.text();
  const b = await sys.call(sys.a, 'GET', `/v1/templates/builds/${start.body.build_id}`);
  assert.equal(b.status, 200, b.text);
  return b.body as { status: string; error: string | null; logs: string };
}

const EVIL = `FROM minimal AS evil
ARG HOST_SECRET
ARG AGENT_SECRET
RUN echo stage-own-shadow > /etc/shadow \\
 && ln -s "$HOST_SECRET" /leak-host && ln -s "$AGENT_SECRET" /leak-agent \\
 && ln -s ../../../../../../../../etc/shadow /leak-rel && ln -s /proc/1/root/etc/shadow /leak-proc \\
 && ln -s /proc/self/root/etc/shadow /leak-self \\
 && mkdir /dir && ln -s /etc/shadow /dir/shadow-link && ln -s "$HOST_SECRET" /dir/host-link \\
 && echo inside > /dir/file
`;

test('COPY --from resolves every symlink inside the stage: host files never reach the template', async () => {
  const before = await sys.neighbourHealth(sys.b);
  const host = `${hostValue}|${agentValue}`;
  const hostShadow = readFileSync('/etc/shadow', 'utf8').split('\n')[0] ?? '';

  const ok = await build(
    `${EVIL}
FROM minimal
COPY --from=evil /leak-rel /got-rel
COPY --from=evil /leak-self /got-self
COPY --from=evil /dir /got-dir
`,
    'copy-from-links',
  );
  assert.equal(ok.status, 'ready', `build failed: ${ok.error}\n${ok.logs}`);
  assert.ok(!ok.logs.includes(hostValue) && !ok.logs.includes(agentValue), 'a host secret is in the build log');

  const created = await sys.call(sys.a, 'POST', '/v1/capsules', { template: 'copy-from-links', timeout_sec: 300 });
  assert.equal(created.status, 201, created.text);
  const id = created.body.id as string;
  try {
    const r = await sys.call(sys.a, 'POST', `/v1/capsules/${id}/exec`, {
      user: 'root',
      cmd: 'cat /got-rel /got-self; readlink /got-dir/shadow-link; readlink /got-dir/host-link; cat /got-dir/file; cat /got-dir/host-link 2>&1; head -c 200 /etc/shadow',
    });
    assert.equal(r.status, 200, r.text);
    const out = `${r.body.stdout}${r.body.stderr}`;
    const lines = String(r.body.stdout).split('\n');
    // The symlinks named as sources were followed inside the stage: its own /etc/shadow.
    assert.deepEqual(lines.slice(0, 2), ['stage-own-shadow', 'stage-own-shadow']);
    // Inside a copied directory links stay links, pointing nowhere useful in the new root.
    assert.deepEqual(lines.slice(2, 5), ['/etc/shadow', hostSecret, 'inside']);
    assert.match(lines[5] ?? '', /No such file or directory|can't open/);
    for (const secret of host.split('|')) assert.ok(!out.includes(secret), `host secret leaked: ${out}`);
    if (hostShadow.includes(':')) assert.ok(!out.includes(hostShadow), 'the host /etc/shadow leaked');
  } finally {
    await sys.call(sys.a, 'DELETE', `/v1/capsules/${id}`);
  }

  // Symlinks to host files name paths that do not exist inside the stage: the step fails.
  for (const [src, name] of [
    ['/leak-host', 'copy-from-host'],
    ['/leak-agent', 'copy-from-agent'],
  ] as const) {
    const bad = await build(`${EVIL}\nFROM minimal\nCOPY --from=evil ${src} /got\n`, name);
    assert.equal(bad.status, 'error', `${src}: ${bad.logs}`);
    assert.match(bad.error ?? '', new RegExp(`'${src}' does not exist in stage 'evil'`));
    assert.ok(!bad.logs.includes(hostValue) && !bad.logs.includes(agentValue), 'a host secret is in the build log');
  }

  // /proc/1/root is the stage capsule's own init's root, when the capsule may read it at all: the
  // copy is the stage's own file or "not there", never the host's.
  const viaProc = await build(
    `${EVIL}\nFROM minimal\nCOPY --from=evil /leak-proc /got\nRUN cat /got\n`,
    'copy-from-proc',
  );
  if (viaProc.status === 'error') assert.match(viaProc.error ?? '', /'\/leak-proc' does not exist in stage 'evil'/);
  else assert.match(viaProc.logs, /\nstage-own-shadow\n/);
  console.log(
    `# COPY --from a /proc/1/root link: ${viaProc.status === 'error' ? 'not resolvable inside the capsule' : "copied the stage's own file"}`,
  );
  assert.ok(!viaProc.logs.includes(hostValue) && !(hostShadow.includes(':') && viaProc.logs.includes(hostShadow)));

  // Another team's template is not a --from source (nor a FROM): it does not exist for team b
  // (nor as an image: the pull goes to the closed mirror).
  const cross = await sys.call(sys.b, 'POST', '/v1/templates', {
    name: 'steal',
    dockerfile: 'FROM minimal\nCOPY --from=copy-from-links /got-dir /x\n',
  });
  assert.equal(cross.status, 404, cross.text);
  assert.match(
    cross.body.error.message,
    /line 2: COPY --from=copy-from-links: no template 'copy-from-links' in this team/,
  );

  const after = await sys.neighbourHealth(sys.b);
  assert.ok(before && after, 'the neighbour stayed healthy');
  const del = await sys.call(sys.a, 'DELETE', '/v1/templates/copy-from-links');
  assert.equal(del.status, 204, del.text);
});
