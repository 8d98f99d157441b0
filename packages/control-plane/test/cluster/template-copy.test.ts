// E2B template builds with copy() behind the balancer (issue 21): the SDK asks a replica for the
// upload link of its file set, PUTs the tar to the link, asks for the build and polls it, each
// request going to whichever replica HAProxy picks (round robin over two). Upload links are signed
// with a key both replicas share and spent in the database, and file sets are kept in the
// database, so the build sees the files whatever replica took the upload; a capsule of the built
// template, made through the balancer, holds them. Then the same request sequence is made by hand
// against each replica in turn: link from replica 0, upload to replica 1 (a second use of it on
// replica 0 is refused), "is it there?" answered yes by both.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Sandbox, Template } from 'e2b';
import { e2bKeyOf } from '../../src/auth/api-keys.js';
import { openDatabase } from '../../src/db/open.js';
import { SHARED_IMAGES } from '../../src/testing/live-up.js';
import { tarOf } from '../uploads.js';
import { type Cluster, startCluster } from './fixture.js';

describe('cluster: E2B Template.build with copy() through HAProxy over 2 replicas', () => {
  let c: Cluster;
  let contextDir: string;
  const sandboxes: Sandbox[] = [];
  const sdk = (url: string) => ({
    apiKey: e2bKeyOf(c.adminKey),
    apiUrl: url,
    sandboxUrl: url,
    requestTimeoutMs: 60_000,
  });

  before(async () => {
    contextDir = mkdtempSync(join(tmpdir(), 'wrenn-cluster-copy-'));
    mkdirSync(join(contextDir, 'site', 'sub'), { recursive: true });
    writeFileSync(join(contextDir, 'site', 'index.html'), '<h1>copied across replicas</h1>\n');
    // Over one 1 MiB database chunk, so the set is stored and read back in several.
    writeFileSync(join(contextDir, 'site', 'sub', 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 'wrenn'));
    c = await startCluster({ replicas: 2, agents: 2 });
  });
  after(async () => {
    for (const s of sandboxes) await s.kill().catch(() => undefined);
    rmSync(contextDir, { recursive: true, force: true });
    // The build's layers and template went into the shared template cache the agents read (named
    // by their ids): removed once the agents are gone, or every run would leave them there.
    const ids: string[] = [];
    if (c) {
      const db = await openDatabase({ databaseUrl: c.databaseUrl });
      try {
        const rows = await db.db.selectFrom('templates').select('id').where('team_id', 'is not', null).execute();
        ids.push(...rows.map((r) => r.id));
      } finally {
        await db.close();
      }
    }
    await c?.stop();
    for (const id of ids)
      if (/^[a-z0-9-]+$/.test(id)) rmSync(join(SHARED_IMAGES, id), { recursive: true, force: true });
  });

  it('builds a template with copy() and a capsule of it sees the copied files', async () => {
    const logs: string[] = [];
    const template = Template({ fileContextPath: contextDir })
      .fromTemplate('base')
      .copy('site', '/home/user/site')
      .runCmd('sha256sum /home/user/site/sub/big.bin > /home/user/sum.txt');
    const info = await Template.build(template, 'cluster-copy', {
      ...sdk(c.balancerUrl),
      onBuildLogs: (e) => logs.push(e.message),
    });
    assert.equal(info.templateId, 'cluster-copy', logs.join('\n'));
    assert.match(logs.join('\n'), /Uploaded 'site'/);
    const sbx = await Sandbox.create('cluster-copy', { ...sdk(c.balancerUrl), timeoutMs: 600_000 });
    sandboxes.push(sbx);
    const out = await sbx.commands.run('cat /home/user/site/index.html && stat -c %s /home/user/site/sub/big.bin');
    assert.equal(out.stdout, `<h1>copied across replicas</h1>\n${3 * 1024 * 1024 + 17}\n`);
    const sum = await sbx.commands.run('sha256sum /home/user/site/sub/big.bin');
    const want = (await sbx.commands.run('cat /home/user/sum.txt')).stdout;
    assert.equal(sum.stdout, want);
  });

  it('a link from one replica uploads through the other, once; both then say the set is kept', async () => {
    const [r0, r1] = c.replicas as [Cluster['replicas'][0], Cluster['replicas'][0]];
    const key = e2bKeyOf(c.adminKey);
    const hash = 'c'.repeat(64);
    const ask = async (url: string) => {
      const r = await fetch(`${url}/templates/cluster-copy/files/${hash}`, { headers: { 'x-api-key': key } });
      assert.equal(r.status, 201);
      return (await r.json()) as { present: boolean; url: string };
    };
    const link = await ask(r0.url);
    assert.equal(link.present, false);
    const tar = gzipSync(await tarOf([{ name: 'a.txt', body: 'a' }]));
    // The link names the host asked (replica 0's); the same path and token sent to replica 1.
    const path = new URL(link.url);
    const put = (url: string) => fetch(`${url}${path.pathname}${path.search}`, { method: 'PUT', body: tar });
    assert.equal((await put(r1.url)).status, 200);
    assert.equal((await put(r0.url)).status, 401, 'a used link worked again on the other replica');
    assert.equal((await ask(r0.url)).present, true);
    assert.equal((await ask(r1.url)).present, true);
  });
});
