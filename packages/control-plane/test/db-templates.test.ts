// Templates, template builds and the audit log, on SQLite and PostgreSQL alike.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  appendAuditEvent,
  appendBuildLog,
  createBuild,
  createTeam,
  createTemplate,
  DbError,
  deleteTeam,
  deleteTemplate,
  deleteTemplateTags,
  getBuild,
  getTemplateById,
  listAuditEvents,
  listBuilds,
  listTemplates,
  listTemplateTags,
  type NewTemplate,
  resolveTemplate,
  setBuildStatus,
  setTemplateTags,
  taggedBuildId,
  updateTemplate,
} from '../src/db/index.js';
import { forEachDialect } from './db-helpers.js';

const base = (name: string, teamId: string | null, extra: Partial<NewTemplate> = {}): NewTemplate => ({
  name,
  kind: 'base',
  teamId,
  vcpus: 1,
  memoryMb: 512,
  runtimes: ['namespace'],
  ...extra,
});

forEachDialect('templates', (_dialect, fresh) => {
  test("names are unique per team and among built-ins; a team's own shadows the built-in", async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const b = await createTeam(db, { name: 'b' });
    const builtin = await createTemplate(db, base('base', null, { sizeBytes: 123_456_789_012 }));
    assert.equal(builtin.sizeBytes, 123_456_789_012);
    await assert.rejects(
      createTemplate(db, base('base', null)),
      (e: unknown) => e instanceof DbError && e.code === 'conflict',
    );
    const own = await createTemplate(
      db,
      base('base', a.id, { kind: 'snapshot', hostId: 'host-1', parent: 'base', vcpus: 2 }),
    );
    await assert.rejects(createTemplate(db, base('base', a.id)), /already exists in this team/);
    await createTemplate(db, base('base', b.id));

    assert.equal((await resolveTemplate(db, a.id, 'base'))?.id, own.id);
    assert.equal((await resolveTemplate(db, null, 'base'))?.id, builtin.id);
    const c = await createTeam(db, { name: 'c' });
    assert.equal((await resolveTemplate(db, c.id, 'base'))?.id, builtin.id);
    assert.equal(await resolveTemplate(db, a.id, 'missing'), null);
    assert.deepEqual(await getTemplateById(db, own.id), own);
    assert.equal(own.kind, 'snapshot');
    assert.equal(own.parent, 'base');
  });

  test('list, update, delete; invalid names are refused', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    await createTemplate(db, base('base', null));
    await createTemplate(db, base('python', null, { kind: 'dockerfile' }));
    const snap = await createTemplate(db, base('my-snap', a.id, { kind: 'snapshot', hostId: 'host-1' }));
    assert.deepEqual(
      (await listTemplates(db, { teamId: a.id })).map((x) => x.name),
      ['base', 'my-snap', 'python'],
    );
    assert.deepEqual(
      (await listTemplates(db, { teamId: null })).map((x) => x.name),
      ['base', 'python'],
    );
    assert.deepEqual(
      (await listTemplates(db, { teamId: a.id, kind: 'snapshot' })).map((x) => x.id),
      [snap.id],
    );
    assert.deepEqual(
      (await listTemplates(db, { teamId: a.id, hostId: 'host-1' })).map((x) => x.id),
      [snap.id],
    );

    const u = await updateTemplate(db, snap.id, { sizeBytes: 4096, hostId: 'host-2', runtimes: ['namespace', 'qemu'] });
    assert.equal(u?.sizeBytes, 4096);
    assert.equal(u?.hostId, 'host-2');
    assert.deepEqual(u?.runtimes, ['namespace', 'qemu']);

    assert.equal(await deleteTemplate(db, a.id, 'base'), null, 'a team cannot delete a built-in');
    assert.equal((await deleteTemplate(db, a.id, 'my-snap'))?.id, snap.id);
    assert.equal(await getTemplateById(db, snap.id), null);
    await assert.rejects(createTemplate(db, base('Bad Name', a.id)), /template name 'Bad Name' is not valid/);
    await assert.rejects(
      createTemplate(db, base('ok', a.id, { kind: 'iso' as never })),
      /template kind must be one of/,
    );
  });

  test("a team's templates go with the team", async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const tpl = await createTemplate(db, base('mine', a.id));
    await deleteTeam(db, a.id);
    assert.equal(await getTemplateById(db, tpl.id), null);
  });
});

forEachDialect('template builds', (_dialect, fresh) => {
  test('create, append logs, finish, list newest first', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const b1 = await createBuild(db, { template: 'py', teamId: a.id });
    assert.equal(b1.status, 'pending');
    assert.match(b1.id, /^bld-[0-9a-z]+$/);
    await setBuildStatus(db, b1.id, 'building');
    await appendBuildLog(db, b1.id, 'step 1\n');
    await appendBuildLog(db, b1.id, '');
    await appendBuildLog(db, b1.id, "step 2 'quoted' \\ done\n");
    const done = await setBuildStatus(db, b1.id, 'ready');
    assert.equal(done?.logs, "step 1\nstep 2 'quoted' \\ done\n");
    assert.ok(done?.finishedAt instanceof Date);
    assert.equal(done?.error, null);

    const b2 = await createBuild(db, { template: 'py', teamId: a.id });
    const failed = await setBuildStatus(db, b2.id, 'error', 'Dockerfile: unknown instruction FOO');
    assert.equal(failed?.error, 'Dockerfile: unknown instruction FOO');
    await createBuild(db, { template: 'other', teamId: null });

    await db.updateTable('template_builds').set({ started_at: 1 }).where('id', '=', b1.id).execute();
    assert.deepEqual(
      (await listBuilds(db, { teamId: a.id, template: 'py' })).map((b) => b.id),
      [b2.id, b1.id],
    );
    assert.equal((await listBuilds(db, { teamId: null })).length, 1);
    assert.equal((await listBuilds(db)).length, 3);
    assert.equal(await getBuild(db, b1.id, 'team-other'), null);
    assert.equal((await getBuild(db, b1.id, a.id))?.id, b1.id);
  });
});

forEachDialect('template tags', (_dialect, fresh) => {
  test('point tags at builds, move them, list, remove some or all; per team and name; gone with the team', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const a = await createTeam(db, { name: 'a' });
    const b = await createTeam(db, { name: 'b' });
    await setTemplateTags(db, a.id, 'py', ['v1', 'prod', 'v1'], 'bld-1');
    await setTemplateTags(db, a.id, 'py', ['v2'], 'bld-2');
    await setTemplateTags(db, a.id, 'py', ['prod'], 'bld-2');
    await setTemplateTags(db, a.id, 'node', ['v1'], 'bld-9');
    await setTemplateTags(db, b.id, 'py', ['v1'], 'bld-5');
    assert.equal(await taggedBuildId(db, a.id, 'py', 'v1'), 'bld-1');
    assert.equal(await taggedBuildId(db, a.id, 'py', 'prod'), 'bld-2');
    assert.equal(await taggedBuildId(db, b.id, 'py', 'v1'), 'bld-5');
    assert.equal(await taggedBuildId(db, a.id, 'py', 'nope'), null);
    const listed = await listTemplateTags(db, a.id, 'py');
    assert.deepEqual(listed.map((x) => `${x.tag}=${x.buildId}`).sort(), ['prod=bld-2', 'v1=bld-1', 'v2=bld-2']);
    assert.ok(listed.every((x) => x.createdAt instanceof Date && x.createdAt.getTime() > 0));
    await deleteTemplateTags(db, a.id, 'py', ['v1', 'missing']);
    await deleteTemplateTags(db, a.id, 'py', []);
    assert.deepEqual((await listTemplateTags(db, a.id, 'py')).map((x) => x.tag).sort(), ['prod', 'v2']);
    await deleteTemplateTags(db, a.id, 'py');
    assert.equal((await listTemplateTags(db, a.id, 'py')).length, 0);
    assert.equal((await listTemplateTags(db, a.id, 'node')).length, 1);
    await deleteTeam(db, b.id);
    assert.equal(await taggedBuildId(db, b.id, 'py', 'v1'), null);
  });
});

forEachDialect('audit events', (_dialect, fresh) => {
  test('append and list by capsule or team in order, paginated', async (t) => {
    const { db } = (await fresh(t)).wrenn;
    const kinds = ['capsule.created', 'capsule.running', 'capsule.paused', 'capsule.resumed', 'capsule.killed'];
    for (const kind of kinds)
      await appendAuditEvent(db, { teamId: 'team-a', capsuleId: 'cl-1', kind, data: { by: 'api' } });
    const other = await appendAuditEvent(db, { teamId: 'team-a', capsuleId: 'cl-2', kind: 'capsule.created' });
    await appendAuditEvent(db, { teamId: 'team-b', kind: 'key.created', data: { nested: { x: [1, 2] } } });
    assert.equal(typeof other.id, 'number');
    assert.deepEqual(other.data, {});

    const p1 = await listAuditEvents(db, { capsuleId: 'cl-1', limit: 3 });
    assert.deepEqual(
      p1.items.map((e) => e.kind),
      kinds.slice(0, 3),
    );
    assert.ok(p1.nextCursor);
    const p2 = await listAuditEvents(db, { capsuleId: 'cl-1', limit: 3, cursor: p1.nextCursor });
    assert.deepEqual(
      p2.items.map((e) => e.kind),
      kinds.slice(3),
    );
    assert.equal(p2.nextCursor, null);
    assert.deepEqual(p2.items[0]?.data, { by: 'api' });

    assert.equal((await listAuditEvents(db, { teamId: 'team-a' })).items.length, 6);
    assert.equal((await listAuditEvents(db, { teamId: 'team-a', kind: 'capsule.created' })).items.length, 2);
    const b = await listAuditEvents(db, { teamId: 'team-b' });
    assert.deepEqual(b.items[0]?.data, { nested: { x: [1, 2] } });
    assert.equal(b.items[0]?.capsuleId, null);
    await assert.rejects(listAuditEvents(db, {}), /needs a capsuleId or a teamId/);
    await assert.rejects(listAuditEvents(db, { teamId: 'team-a', cursor: 'x' }), /cursor is not valid/);
  });
});
