// Hostile probe for issue 14 item 7: the files API must not be raced into acting as root. A process
// of the user swaps a symlink in a tight loop between something the user may use and something only
// root may (a 0600 secret, a root-owned file, a 0700 directory) while envd serves downloads, uploads,
// Stat, ListDir and watchers for that user. Every answer must be the user's object or a refusal;
// both outcomes must occur (the swap really raced the requests), and root's own requests still work.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { listAttributesSync, setAttributeSync } from '@napi-rs/xattr';
import { type After, createTestUser, type TestUser, tempDir } from '../filesystem-fixtures.js';
import { startTestEnvd, type TestEnvd, userHeader } from '../helpers.js';

const ROUNDS = 500;

async function envdFor(t: After): Promise<TestEnvd> {
  const envd = await startTestEnvd({ portForwarding: false });
  t.after(() => envd.close());
  return envd;
}

interface Playground {
  /** A directory the user owns (the attacker's playground) inside a root-owned temp dir. */
  dir: string;
  /** Starts, as the user, a loop pointing `link` at each of `targets` in turn (symlink + rename). */
  swap(link: string, targets: string[]): void;
}

/** The playground; when the test ends the swap loop is killed and waited for, then the dir removed. */
function playground(t: After, user: TestUser): Playground {
  const base = mkdtempSync(join(tmpdir(), 'wrenn-race-'));
  chmodSync(base, 0o755);
  const dir = join(base, 'play');
  mkdirSync(dir, { mode: 0o755 });
  chownSync(dir, user.uid, user.gid);
  const loops: ChildProcess[] = [];
  t.after(async () => {
    await Promise.all(
      loops.map(async (child) => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit');
          child.kill('SIGKILL');
          await exited;
        }
      }),
    );
    rmSync(base, { recursive: true, force: true });
    // createTestUser's userdel ran first (hooks run in order) and failed while the loop lived.
    try {
      execFileSync('userdel', [user.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });
  const code = `
    const fs = require('node:fs');
    const [link, ...targets] = JSON.parse(process.argv[1]);
    const tmp = link + '.swap';
    for (let i = 0; ; i++) {
      try { fs.unlinkSync(tmp); } catch {}
      fs.symlinkSync(targets[i % targets.length], tmp);
      fs.renameSync(tmp, link);
    }`;
  return {
    dir,
    swap(link, targets) {
      const child = spawn(process.execPath, ['-e', code, JSON.stringify([link, ...targets])], {
        uid: user.uid,
        gid: user.gid,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      loops.push(child);
      let stderr = '';
      child.stderr?.on('data', (d) => {
        stderr += d;
      });
      child.once('exit', (code, signal) => {
        if (signal !== 'SIGKILL') process.stderr.write(`swap loop exited early (${code ?? signal}): ${stderr}\n`);
      });
    },
  };
}

/** Waits until the swap loop has made the link at least once. */
async function linkExists(link: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      statSync(link, { throwIfNoEntry: true });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`the swap loop never made ${link}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

function filesUrl(envd: TestEnvd, query: Record<string, string>): string {
  return `${envd.baseUrl}/files?${new URLSearchParams(query)}`;
}

function codeOf(err: unknown): Code {
  if (err instanceof ConnectError) return err.code;
  throw err;
}

describe('files API against a symlink swapped by the user (issue 14 item 7)', () => {
  test(`${ROUNDS} downloads as the user never return a root-only file`, async (t) => {
    const envd = await envdFor(t);
    const user = createTestUser(t);
    const play = playground(t, user);
    const dir = play.dir;
    const marker = `SECRET-${randomBytes(8).toString('hex')}`;
    const secret = join(tempDir(t, 'wrenn-secret-'), 'shadow');
    writeFileSync(secret, `${marker}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'ok.txt'), 'public\n');
    chownSync(join(dir, 'ok.txt'), user.uid, user.gid);
    const link = join(dir, 'link');
    play.swap(link, [join(dir, 'ok.txt'), secret, '/etc/shadow']);
    await linkExists(link);

    const shadow = readFileSync('/etc/shadow', 'utf8');
    const statuses = new Map<number, number>();
    for (let i = 0; i < ROUNDS; i++) {
      const res = await fetch(filesUrl(envd, { path: link, username: user.name }));
      const body = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(!body.includes(marker), `download ${i} returned the secret (status ${res.status})`);
      if (shadow.length > 0) assert.ok(!body.includes(shadow.slice(0, 40)), `download ${i} returned /etc/shadow`);
      if (res.status === 200) assert.equal(body, 'public\n');
      else assert.ok([403, 404].includes(res.status), `download ${i}: unexpected ${res.status} ${body}`);
    }
    t.diagnostic(`statuses over ${ROUNDS} downloads: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.ok((statuses.get(200) ?? 0) > 0, 'the user never got its own file: the probe did not run');
    assert.ok((statuses.get(403) ?? 0) > 0, 'the swap never pointed at the secret: the race was not exercised');
    // Root (the neighbour of this request) still reads what it may.
    const asRoot = await fetch(filesUrl(envd, { path: secret, username: 'root' }));
    assert.equal(await asRoot.text(), `${marker}\n`);
  });

  test(`${ROUNDS} uploads as the user never write through the link into a root-owned file`, async (t) => {
    const envd = await envdFor(t);
    const user = createTestUser(t);
    const play = playground(t, user);
    const dir = play.dir;
    const victimDir = tempDir(t, 'wrenn-victim-');
    const victim = join(victimDir, 'victim.conf');
    writeFileSync(victim, 'root-owned\n', { mode: 0o644 });
    const mine = join(dir, 'mine.txt');
    writeFileSync(mine, '');
    chownSync(mine, user.uid, user.gid);
    const link = join(dir, 'link');
    play.swap(link, [mine, victim]);
    await linkExists(link);

    const statuses = new Map<number, number>();
    for (let i = 0; i < ROUNDS; i++) {
      const res = await fetch(filesUrl(envd, { path: link, username: user.name }), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'x-metadata-owner': 'attacker' },
        body: `pwned ${i}\n`,
      });
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok([200, 403].includes(res.status), `upload ${i}: unexpected ${res.status}`);
    }
    t.diagnostic(`statuses over ${ROUNDS} uploads: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.equal(readFileSync(victim, 'utf8'), 'root-owned\n', 'an upload wrote into the root-owned file');
    assert.equal(statSync(victim).uid, 0, 'the root-owned file changed owner');
    assert.equal(statSync(victim).mode & 0o777, 0o644);
    assert.deepEqual(
      listAttributesSync(victim).filter((n) => n.startsWith('user.e2b.')),
      [],
      'metadata was set on the root-owned file',
    );
    assert.match(readFileSync(mine, 'utf8'), /^pwned \d+\n$/);
    assert.ok((statuses.get(200) ?? 0) > 0, 'no upload reached the user file: the probe did not run');
    assert.ok((statuses.get(403) ?? 0) > 0, 'the swap never pointed at the root file: the race was not exercised');
  });

  // An upload's missing parents are made as root and given to the user, as E2B's envd does, so the
  // user may get new directories of its own in a root-owned one (that is the rule, not the attack).
  // The attack: with the link swapped under the uploads, root must never give the user anything
  // it did not just create (a root-owned directory or file already there), nor write a file there.
  test('uploads below a swapped directory link never give the user anything root did not make for it', async (t) => {
    const envd = await envdFor(t);
    const user = createTestUser(t);
    const play = playground(t, user);
    const dir = play.dir;
    const rootOnly = join(tempDir(t, 'wrenn-rootdir-'), 'locked');
    mkdirSync(rootOnly, { mode: 0o755 });
    // Root's own entries with the names the uploads use: they must stay root's.
    const n = ROUNDS / 2;
    for (let i = 0; i < n; i += 2) mkdirSync(join(rootOnly, `f${i}`), { mode: 0o755 });
    writeFileSync(join(rootOnly, 'keep'), 'root\n', { mode: 0o600 });
    const pub = join(dir, 'pub');
    mkdirSync(pub);
    chownSync(pub, user.uid, user.gid);
    const link = join(dir, 'd');
    play.swap(link, [pub, rootOnly]);
    await linkExists(link);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const res = await fetch(filesUrl(envd, { path: join(link, `f${i}`, 'x.txt'), username: user.name }), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: 'x',
      });
      await res.arrayBuffer();
      if (res.status === 200) ok++;
      // 403: the user may not create there; 404: the parent made a moment ago is now elsewhere.
      else assert.ok([400, 403, 404].includes(res.status), `upload ${i}: unexpected ${res.status}`);
    }
    assert.equal(statSync(rootOnly).uid, 0, 'the root-owned directory changed hands');
    assert.equal(statSync(join(rootOnly, 'keep')).uid, 0, "root's file changed hands");
    for (const name of readdirSync(rootOnly)) {
      const i = Number(name.slice(1));
      if (name === 'keep') continue;
      const st = statSync(join(rootOnly, name));
      assert.ok(st.isDirectory(), `${name}: an upload made a file in the root-owned directory itself`);
      if (i % 2 === 0) {
        assert.equal(st.uid, 0, `${name}: root's directory was given to the user`);
        assert.deepEqual(readdirSync(join(rootOnly, name)), [], `${name}: the user wrote into root's directory`);
      } else assert.equal(st.uid, user.uid, `${name}: a directory made for the user is not the user's`);
    }
    assert.ok(ok > 0, 'no upload went through: the probe did not run');
  });

  test(`Stat, ListDir and watchers as the user never see inside a root-only directory`, async (t) => {
    const envd = await envdFor(t);
    const user = createTestUser(t);
    const as = { headers: userHeader(user.name) };
    const play = playground(t, user);
    const dir = play.dir;
    const hidden = `hidden-${randomBytes(6).toString('hex')}`;
    const secretDir = join(tempDir(t, 'wrenn-secretdir-'), 'vault');
    mkdirSync(secretDir, { mode: 0o700 });
    writeFileSync(join(secretDir, hidden), 'x', { mode: 0o600 });
    setAttributeSync(join(secretDir, hidden), 'user.e2b.secret', 'yes');
    const pub = join(dir, 'pub');
    mkdirSync(pub);
    writeFileSync(join(pub, 'visible.txt'), 'v');
    chownSync(pub, user.uid, user.gid);
    const link = join(dir, 'd');
    play.swap(link, [pub, secretDir]);
    await linkExists(link);

    const codes = new Map<string, number>();
    const count = (k: string) => codes.set(k, (codes.get(k) ?? 0) + 1);
    for (let i = 0; i < ROUNDS / 2; i++) {
      try {
        const { entries } = await envd.filesystem.listDir({ path: link, depth: 1 }, as);
        for (const e of entries) assert.ok(!e.name.includes('hidden-'), `ListDir ${i} listed ${e.path}`);
        count('list-ok');
      } catch (err) {
        const c = codeOf(err);
        assert.ok([Code.PermissionDenied, Code.NotFound].includes(c), `ListDir ${i}: ${String(err)}`);
        count(`list-${Code[c]}`);
      }
      try {
        const { entry } = await envd.filesystem.stat({ path: join(link, hidden) }, as);
        assert.fail(`Stat ${i} saw ${entry?.path} (metadata ${JSON.stringify(entry?.metadata)})`);
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        assert.ok([Code.PermissionDenied, Code.NotFound].includes(err.code), `Stat ${i}: ${String(err)}`);
        count(`stat-${Code[err.code]}`);
      }
    }
    // Watchers started on the swapping link: events of the vault must never reach the user.
    const watchers: string[] = [];
    for (let i = 0; i < 20; i++) {
      try {
        watchers.push((await envd.filesystem.createWatcher({ path: link, recursive: false }, as)).watcherId);
        count('watch-ok');
      } catch (err) {
        assert.equal(codeOf(err), Code.PermissionDenied, String(err));
        count('watch-PermissionDenied');
      }
    }
    writeFileSync(join(secretDir, `${hidden}-new`), 'y');
    writeFileSync(join(pub, 'new-public.txt'), 'p');
    await new Promise((r) => setTimeout(r, 300));
    let publicEvents = 0;
    for (const id of watchers) {
      const { events } = await envd.filesystem.getWatcherEvents({ watcherId: id }, as);
      for (const e of events) assert.ok(!e.name.includes('hidden-'), `a watcher reported ${e.name} from the vault`);
      publicEvents += events.filter((e) => e.name === 'new-public.txt').length;
      await envd.filesystem.removeWatcher({ watcherId: id }, as);
    }
    t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(codes))}; public events seen: ${publicEvents}`);
    assert.ok((codes.get('list-ok') ?? 0) > 0, 'ListDir never listed the public directory: the probe did not run');
    assert.ok(
      (codes.get('list-PermissionDenied') ?? 0) > 0,
      'the swap never pointed at the vault: the race was not exercised',
    );
    assert.ok((codes.get('watch-ok') ?? 0) === 0 || publicEvents > 0, 'watchers on the public directory saw nothing');
    // Root still lists the vault.
    const { entries } = await envd.filesystem.listDir({ path: secretDir, depth: 1 });
    assert.ok(entries.some((e) => e.name === hidden));
  });
});
