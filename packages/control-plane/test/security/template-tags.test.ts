// Hostile probes for template tags across teams (E2B's tags API, api/e2b/template-tags.ts, and
// `name:tag` references): team B, knowing the name and tag of team A's template, cannot see it,
// start a sandbox from it, read, move, add or remove its tags, or delete it; B building the same
// `name:tag` makes B's own template and leaves A's tag on A's build. A's sandbox from the tag still
// starts A's build, and a neighbour sandbox of B keeps working. Run against `wrenn up` with the e2b SDK;
// then the native API and CLI (`template tag|tags|rm name:tag`, `capsule create -t name:tag`) with B's probes,
// and the tags in each team's template list (GET /v1/templates).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Sandbox, Template } from 'e2b';
import { createApiKey, e2bKeyOf } from '../../src/auth/api-keys.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { type LiveSystem, SHARED_IMAGES, startLive } from '../e2b-live.js';
import { client } from '../native-helpers.js';

const SLOT = 15;
const NAME = 'tags-secret';
let sys: LiveSystem;
let keyB: string;
let nativeKeyB: string;
const run = promisify(execFile);
const WRENN = new URL('../../../../cli/bin/wrenn.js', import.meta.url).pathname;
let neighbour: Sandbox | undefined;

before(async () => {
  sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES });
  const db = sys.cp.ctx.database.db;
  const team = await createTeam(db, { name: 'tags-probe-b' });
  nativeKeyB = (await createApiKey(db, { teamId: team.id, name: 'tags-probe-b' })).key;
  keyB = e2bKeyOf(nativeKeyB);
  neighbour = await Sandbox.create('minimal', { ...sys.sdk(keyB), timeoutMs: 600_000 });
});
after(async () => {
  await neighbour?.kill().catch(() => undefined);
  // Closing the live system removes the templates the builds made from the shared image cache.
  await sys?.close();
});

const api = async (key: string, method: string, path: string, body?: unknown) => {
  const res = await fetch(`${sys.url}${path}`, {
    method,
    headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, text: await res.text() };
};

const owner = async (ref: string, key?: string) => {
  const sbx = await Sandbox.create(ref, { ...sys.sdk(key), timeoutMs: 300_000 });
  try {
    return (await sbx.commands.run('cat /tmp/owner.txt')).stdout.trim();
  } finally {
    await sbx.kill();
  }
};

const NEVER = 'tags-never-built';
/** The error `op` fails with, the name made neutral, so B's answer for A's name can be compared with one for a name nobody has. */
const refusal = async (op: (name: string) => Promise<unknown>, name: string): Promise<string> => {
  try {
    await op(name);
  } catch (err) {
    return String((err as Error).message).replaceAll(name, '<name>');
  }
  throw new Error(`${name}: not refused`);
};

const built = (who: string) => Template().fromTemplate('base').runCmd(`echo ${who} > /tmp/owner.txt`);

test("team B cannot see, use, move, remove or delete team A's tags", async () => {
  const a = await Template.build(built('team-a'), `${NAME}:v1`, sys.sdk());
  const b = sys.sdk(keyB);

  // Each refusal is a 404 that reads exactly as for a name no team has: B learns nothing of A's.
  const probes: [string, (name: string) => Promise<unknown>][] = [
    ['getTags', (n) => Template.getTags(n, b)],
    ['create name:v1', (n) => Sandbox.create(`${n}:v1`, { ...b, timeoutMs: 60_000 })],
    ['create name', (n) => Sandbox.create(n, { ...b, timeoutMs: 60_000 })],
    ['create name:default', (n) => Sandbox.create(`${n}:default`, { ...b, timeoutMs: 60_000 })],
    ['assign to name:v1', (n) => Template.assignTags(`${n}:v1`, ['stolen'], b)],
    ['assign v1 to name', (n) => Template.assignTags(n, ['v1'], b)],
    ['remove v1', (n) => Template.removeTags(n, ['v1'], b)],
  ];
  for (const [what, op] of probes) {
    const got = await refusal(op, NAME);
    assert.match(got, /^404\b|not found/i, `${what}: ${got}`);
    assert.equal(got, await refusal(op, NEVER), `${what}: B's answer differs for A's name`);
  }
  assert.equal(await Template.exists(NAME, b), false);
  for (const path of [`/templates/${NAME}`, `/templates/${NAME}:v1`]) {
    const del = await api(keyB, 'DELETE', path);
    assert.equal(del.status, 404, `${path}: ${del.text}`);
  }
  const raw = await api(keyB, 'POST', '/templates/tags', { target: `${NAME}:v1`, tags: ['raw'] });
  assert.equal(raw.status, 404, raw.text);

  // B's own build of the same name:tag is B's template; A's tag stays on A's build.
  const bBuild = await Template.build(built('team-b'), `${NAME}:v1`, b);
  assert.notEqual(bBuild.buildId, a.buildId);
  assert.equal(await owner(`${NAME}:v1`, keyB), 'team-b');
  assert.equal(await owner(`${NAME}:v1`), 'team-a');
  const tagsA = await Template.getTags(NAME, sys.sdk());
  assert.deepEqual(tagsA.map((t) => `${t.tag}=${t.buildId === a.buildId ? 'a' : t.buildId}`).sort(), [
    'default=a',
    'v1=a',
  ]);
  assert.ok(!tagsA.some((t) => t.tag === 'stolen' || t.tag === 'raw'));

  // The neighbour sandbox of B kept working through all of it.
  assert.equal((await neighbour!.commands.run('echo alive')).stdout, 'alive\n');
});

test('native API and CLI: name:tag on create, tags listed, added and removed; team B cannot reach them', async () => {
  const a = client(sys.url, sys.adminKey);
  const b = client(sys.url, nativeKeyB);
  const env = { ...process.env, WRENN_BASE_URL: sys.url, WRENN_API_KEY: sys.adminKey, HOME: sys.dataDir };
  const wrenn = async (...args: string[]) => (await run(process.execPath, [WRENN, ...args], { env })).stdout;
  const ownerOf = async (id: string) => {
    const r = await a('POST', `/v1/capsules/${id}/exec`, { cmd: 'cat /tmp/owner.txt' });
    assert.equal(r.status, 200, r.text);
    await a('DELETE', `/v1/capsules/${id}`);
    return (r.body.stdout as string).trim();
  };

  // A's tag through the CLI: `template tag`, then `capsule create -t name:tag` starts that build.
  await wrenn('template', 'tag', `${NAME}:v1`, 'prod');
  const listed = JSON.parse(await wrenn('template', 'tags', NAME, '--json')) as { tag: string; build_id: string }[];
  const v1 = listed.find((t) => t.tag === 'v1')?.build_id;
  assert.ok(v1, JSON.stringify(listed));
  assert.equal(listed.find((t) => t.tag === 'prod')?.build_id, v1, JSON.stringify(listed));
  assert.equal(
    await ownerOf((await wrenn('capsule', 'create', '-t', `${NAME}:prod`, '--timeout', '300')).trim()),
    'team-a',
  );
  const created = await a('POST', '/v1/capsules', { template: `${NAME}:v1`, timeout_sec: 300 });
  assert.equal(created.status, 201, created.text);
  assert.equal(await ownerOf(created.body.id), 'team-a');

  // B (which has a template of the same name of its own) cannot reach A's 'prod'.
  const useB = await b('POST', '/v1/capsules', { template: `${NAME}:prod`, timeout_sec: 60 });
  assert.equal(useB.status, 404, useB.text);
  const seeB = await b('GET', `/v1/templates/${NAME}/tags`);
  assert.equal(seeB.status, 200, seeB.text);
  assert.ok(!(seeB.body.tags as { tag: string }[]).some((t) => t.tag === 'prod'), seeB.text);
  // The template list (tags included) shows each team its own tags only.
  const listedTags = async (call: typeof a) => {
    const r = await call('GET', '/v1/templates');
    assert.equal(r.status, 200, r.text);
    return (r.body.templates as { name: string; tags: string[] }[]).find((t) => t.name === NAME)?.tags.sort();
  };
  assert.deepEqual(await listedTags(a), ['prod', 'v1']);
  assert.deepEqual(await listedTags(b), ['v1']);
  const cliList = JSON.parse(await wrenn('template', 'ls', '--json')) as { name: string; tags: string[] }[];
  assert.deepEqual(cliList.find((t) => t.name === NAME)?.tags.sort(), ['prod', 'v1']);
  const moveB = await b('POST', `/v1/templates/${encodeURIComponent(`${NAME}:prod`)}/tags`, { tags: ['mine'] });
  assert.equal(moveB.status, 404, moveB.text);
  await b('DELETE', `/v1/templates/${NAME}/tags/prod`);
  const afterB = await a('GET', `/v1/templates/${NAME}/tags`);
  assert.ok(
    (afterB.body.tags as { tag: string }[]).some((t) => t.tag === 'prod'),
    afterB.text,
  );

  // `template rm name:tag` removes only the tag.
  await wrenn('template', 'rm', `${NAME}:prod`);
  const gone = await a('POST', '/v1/capsules', { template: `${NAME}:prod`, timeout_sec: 60 });
  assert.equal(gone.status, 404, gone.text);
  const still = await a('POST', '/v1/capsules', { template: `${NAME}:v1`, timeout_sec: 300 });
  assert.equal(still.status, 201, still.text);
  assert.equal(await ownerOf(still.body.id), 'team-a');
  assert.equal((await neighbour!.commands.run('echo alive')).stdout, 'alive\n');
});
