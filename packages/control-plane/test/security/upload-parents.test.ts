// Hostile probe for envd's upload parents (issue 17): POST /files makes an upload's missing parent
// directories as root and gives them to the user, as E2B's envd does. Inside a real capsule the
// default user points links at root's directories and files and uploads through them: root must
// never give away what was there before (a directory, a file), never write a file the user could
// not, and a neighbour capsule keeps working. Run through the e2b SDK against `wrenn up`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Sandbox } from 'e2b';
import { type LiveSystem, startLive } from '../e2b-live.js';

const SLOT = 7;
let sys: LiveSystem;
const made: Sandbox[] = [];

before(async () => {
  sys = await startLive({ db: 'sqlite', slot: SLOT });
});
after(async () => {
  for (const s of made) await s.kill().catch(() => undefined);
  await sys?.close();
});

test("the default user cannot get root's directories or files through upload parents; the neighbour keeps working", async () => {
  const opts = { ...sys.sdk(), timeoutMs: 300_000 };
  const a = await Sandbox.create('minimal', opts);
  made.push(a);
  const b = await Sandbox.create('minimal', opts);
  made.push(b);
  // Root's things the links point at.
  await a.commands.run(
    'mkdir -p /srv/rootdir/existing && echo secret > /srv/rootdir/existing/keep && chmod 700 /srv/rootdir/existing && echo root > /srv/rootfile && chmod 600 /srv/rootfile',
    { user: 'root' },
  );
  await a.commands.run(
    'ln -s /srv/rootdir /home/user/d && ln -s /srv/rootfile /home/user/f && ln -s /etc /home/user/etc',
  );
  const attempts: [string, string][] = [
    ['/home/user/d/existing/x.txt', "a file in root's 0700 directory through a link"],
    ['/home/user/d/existing/new/x.txt', "a new directory inside root's 0700 directory"],
    ['/home/user/f/x.txt', 'a root file as a parent'],
    ['/home/user/etc/passwd', "root's /etc/passwd through a link"],
    ['/etc/shadow', "root's /etc/shadow"],
  ];
  for (const [path, what] of attempts) {
    await assert.rejects(a.files.write(path, 'pwned'), `upload to ${path} (${what}) went through`);
  }
  const after = await a.commands.run(
    'stat -c "%n %U %a" /srv/rootdir /srv/rootdir/existing /srv/rootdir/existing/keep /srv/rootfile /etc /etc/passwd /etc/shadow; ls -A /srv/rootdir/existing; grep -c pwned /etc/passwd /etc/shadow || true',
    { user: 'root' },
  );
  assert.equal(
    after.stdout,
    [
      '/srv/rootdir root 755',
      '/srv/rootdir/existing root 700',
      '/srv/rootdir/existing/keep root 644',
      '/srv/rootfile root 600',
      '/etc root 755',
      `/etc/passwd root ${(await a.commands.run('stat -c %a /etc/passwd')).stdout.trim()}`,
      `/etc/shadow root ${(await a.commands.run('stat -c %a /etc/shadow', { user: 'root' })).stdout.trim()}`,
      'keep',
      '/etc/passwd:0',
      '/etc/shadow:0',
      '',
    ].join('\n'),
  );
  // What the rule allows: a new directory of the user's own below root's 0755 one, nothing more.
  await a.files.write('/home/user/d/mine/x.txt', 'ok');
  assert.equal(
    (await a.commands.run('stat -c "%U" /srv/rootdir/mine /srv/rootdir/mine/x.txt /srv/rootdir')).stdout,
    'user\nuser\nroot\n',
  );
  // The neighbour saw none of it and works.
  assert.equal((await b.commands.run('ls /srv 2>/dev/null | wc -l; echo alive')).stdout, '0\nalive\n');
  await b.files.write('/opt/b/x.txt', 'b');
  assert.equal(await b.files.read('/opt/b/x.txt'), 'b');
});
