// Garbage collection of container images and build file sets through the control plane, against a
// live `wrenn up` and Debian's docker-registry on a loopback port: POST /v1/images/prune (admin
// only, checked input) keeps the image template of a running capsule and removes it once the
// capsule is gone; a capsule from the image then pulls it again; creates from an image while
// prune passes run all start; stored file sets go after their TTL unless a build of their team
// runs; and with two hosts, a capsule from an image goes to the host with room, which pulls the
// image on demand.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pushMuslImage, registrySkip, startRegistry, type TestRegistry } from '@wrenn/host-agent/testing/oci';
import { getCapsule } from '../src/db/repositories/capsules.js';
import { createHost, setHostDraining } from '../src/db/repositories/hosts.js';
import { createBuild } from '../src/db/repositories/template-builds.js';
import { pruneFileSets } from '../src/templates/file-set-gc.js';
import { type ExtraAgent, type LiveSystem, startLive } from './e2b-live.js';
import { client, execOk, newTeamKey } from './native-helpers.js';
import { storeFileSet } from './uploads.js';

const run = promisify(execFile);
const WRENN = new URL('../../../cli/bin/wrenn.js', import.meta.url).pathname;
const SLOT = 13;
const EXTRA_SLOT = 12;
const skip = registrySkip;

describe('image and file set garbage collection (live)', { skip }, () => {
  let sys: LiveSystem;
  let call: ReturnType<typeof client>;
  let reg: TestRegistry;
  let image = '';
  const capsules: string[] = [];

  before(async () => {
    reg = await startRegistry();
    await pushMuslImage(reg, 'gc/live', 'v1', [{ name: 'live.txt', content: 'live\n' }]);
    image = `${reg.host}/gc/live:v1`;
    sys = await startLive({ db: 'sqlite', slot: SLOT });
    call = client(sys.url, sys.adminKey);
  });
  after(async () => {
    try {
      for (const id of capsules) await call?.('DELETE', `/v1/capsules/${id}`).catch(() => undefined);
      await sys?.close();
    } finally {
      await reg?.stop();
    }
  });

  const exec = (id: string, cmd: string, user?: string) => execOk(call, id, cmd, user);
  const fromImage = async () => {
    const r = await call('POST', '/v1/capsules', { image, timeout_sec: 300 });
    assert.equal(r.status, 201, r.text);
    capsules.push(r.body.id);
    return r.body as { id: string; template: string };
  };
  const prune = async (body: object = { older_than_sec: 0 }) => {
    const r = await call('POST', '/v1/images/prune', body);
    assert.equal(r.status, 200, r.text);
    return r.body as {
      hosts: { host_id: string; removed_templates: string[]; removed_layers: string[]; error?: string }[];
      file_sets: { removed: number; kept: number };
    };
  };
  const layersOf = (dataDir: string) =>
    existsSync(join(dataDir, 'oci', 'layers')) ? readdirSync(join(dataDir, 'oci', 'layers')) : [];

  it('is for the admin only and checks its input', async () => {
    const { key } = await newTeamKey(sys.cp, 'gc-user');
    const user = client(sys.url, key);
    assert.equal((await user('POST', '/v1/images/prune', {})).status, 403);
    assert.equal((await client(sys.url)('POST', '/v1/images/prune', {})).status, 401);
    for (const bad of [{ older_than_sec: -1 }, { older_than_sec: 'soon' }, { older_than_sec: 1.5 }, { other: 1 }]) {
      const r = await call('POST', '/v1/images/prune', bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
    }
  });

  it('keeps the image of a running capsule, removes it once unused, and pulls it again on the next create', async () => {
    const c = await fromImage();
    const oci = `oci-${c.template.slice('img-'.length)}`;
    const kept = await prune();
    assert.equal(kept.hosts.length, 1);
    assert.equal(kept.hosts[0]?.error, undefined);
    assert.ok(!kept.hosts[0]?.removed_templates.includes(oci), 'the running capsule’s image template was removed');
    assert.equal((await exec(c.id, 'cat /live.txt')).stdout, 'live\n');

    assert.equal((await call('DELETE', `/v1/capsules/${c.id}`)).status, 204);
    const gone = await prune();
    assert.deepEqual(gone.hosts[0]?.removed_templates, [oci]);
    assert.equal(gone.hosts[0]?.removed_layers.length, 2);
    assert.deepEqual(layersOf(sys.dataDir), []);

    const again = await fromImage();
    assert.equal(again.template, c.template);
    assert.equal((await exec(again.id, 'cat /live.txt /app/hello.txt')).stdout, 'live\nhi from the image\n');
    assert.equal((await call('DELETE', `/v1/capsules/${again.id}`)).status, 204);

    // The CLI: `wrenn image prune` with the admin key (JSON answer), bad input refused before any call.
    const env = { ...process.env, WRENN_BASE_URL: sys.url, WRENN_API_KEY: sys.adminKey, HOME: sys.dataDir };
    const cli = await run(process.execPath, [WRENN, 'image', 'prune', '--older-than', '0', '--json'], { env });
    const report = JSON.parse(cli.stdout) as { hosts: { removedTemplates: string[] }[] };
    assert.deepEqual(report.hosts[0]?.removedTemplates, [oci]);
    await assert.rejects(
      run(process.execPath, [WRENN, 'image', 'prune', '--older-than', 'soon'], { env }),
      (err: { stderr?: string }) => /--older-than soon/.test(err.stderr ?? ''),
    );
  });

  it('creates from an image while prune passes run all start on a whole template', async () => {
    let running = true;
    let passes = 0;
    const loop = (async () => {
      while (running) {
        await prune();
        passes++;
      }
    })();
    try {
      for (let i = 0; i < 3; i++) {
        const c = await fromImage();
        assert.equal((await exec(c.id, 'cat /live.txt')).stdout, 'live\n');
        assert.equal((await call('DELETE', `/v1/capsules/${c.id}`)).status, 204);
      }
    } finally {
      running = false;
      await loop;
    }
    assert.ok(passes > 0);
  });

  it('removes stored file sets after their TTL, not while a build of their team runs', async () => {
    const ctx = sys.cp.ctx;
    const db = ctx.database.db;
    const { teamId: idle } = await newTeamKey(sys.cp, 'gc-files-idle');
    const { teamId: busy } = await newTeamKey(sys.cp, 'gc-files-busy');
    const twoDaysAgo = Date.now() - 2 * 86_400_000;
    // Sets as file-sets.ts keeps them in the database: a row naming its upload's chunks.
    const put = (team: string, c: string, lastUsed: number) =>
      storeFileSet(db, {
        teamId: team,
        hash: c.repeat(64),
        uploadId: `gc-${team}-${c}`,
        data: Buffer.alloc(100),
        lastUsed,
      });
    const kept = async () =>
      (await db.selectFrom('template_file_sets').select(['team_id', 'hash']).execute())
        .filter((r) => r.team_id === idle || r.team_id === busy)
        .map((r) => `${r.team_id === idle ? 'idle' : 'busy'}:${r.hash[0]}`)
        .sort();
    await put(idle, 'a', twoDaysAgo);
    await put(idle, 'b', Date.now());
    await put(busy, 'd', twoDaysAgo);
    await createBuild(db, { template: 'gc-files', teamId: busy, status: 'building' });

    const r = await pruneFileSets(ctx);
    assert.equal(r.removed, 1);
    assert.deepEqual(await kept(), ['busy:d', 'idle:b']);
    // On demand with 0: everything unused goes, still not the running build's.
    const all = await prune();
    assert.equal(all.file_sets.removed, 1);
    assert.deepEqual(await kept(), ['busy:d']);
  });

  describe('with two hosts', () => {
    let extra: ExtraAgent;
    before(async () => {
      extra = await sys.startExtraAgent(EXTRA_SLOT, { ownTemplates: true });
      await createHost(sys.cp.ctx.database.db, {
        id: extra.agent.hostId,
        address: extra.agent.url,
        runtimes: ['namespace'],
        cpuCount: 2,
        memoryMb: 4096,
        status: 'online',
        agentSecret: extra.agent.secret,
      });
    });

    it('a capsule from an image goes where there is room, and that host pulls the image', async () => {
      const db = sys.cp.ctx.database.db;
      const hostA = sys.up.agent.hostId;
      const hostB = extra.agent.hostId;
      // Only B takes capsules: it has never pulled the image.
      await setHostDraining(db, hostA, true);
      assert.deepEqual(layersOf(extra.dataDir), []);
      const onB = await fromImage();
      assert.equal((await getCapsule(db, onB.id))?.hostId, hostB);
      assert.equal((await exec(onB.id, 'cat /live.txt')).stdout, 'live\n');
      assert.equal(layersOf(extra.dataDir).length, 2, 'host B did not pull the image');
      // Then only A: it pulls again (its cache was pruned) while B's capsule keeps running.
      await setHostDraining(db, hostA, false);
      await setHostDraining(db, hostB, true);
      const onA = await fromImage();
      assert.equal((await getCapsule(db, onA.id))?.hostId, hostA);
      assert.equal((await exec(onA.id, 'cat /live.txt')).stdout, 'live\n');
      assert.equal((await exec(onB.id, 'cat /live.txt')).stdout, 'live\n');
      // A prune on both keeps both images (each host's capsule uses its own).
      const both = await prune();
      assert.equal(both.hosts.length, 2);
      for (const h of both.hosts) assert.deepEqual([h.error, h.removed_templates], [undefined, []], h.host_id);
      await setHostDraining(db, hostB, false);
      for (const id of [onA.id, onB.id]) assert.equal((await call('DELETE', `/v1/capsules/${id}`)).status, 204);
    });
  });
});
