// Hostile probe for issue 14 item 7 in real capsules (namespace runtime, real envd): inside capsule
// A the default user swaps a symlink in its home between its own file and root-only targets (a
// 0600 secret in /root, a root-owned file in /etc) while envd's files API serves that user
// downloads and uploads through the link. Nothing root-only may come back or be written; both
// outcomes (served, refused) must occur; neighbour capsule B keeps serving meanwhile and after.
// Everything made here is removed in after().
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { execInCapsule, type NamespaceRuntime } from '../../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../../src/runtimes/runtime.js';
import { type Env, makeEnv, rand, spec } from '../namespace-fixtures.js';

const ROUNDS = 300;
const USER_UID = 1000;
const MARKER = `SECRET-${rand(12)}`;
const run = promisify(execFile);

let env: Env;
let rt: NamespaceRuntime;
const handles = new Set<RuntimeHandle>();
let a: { h: RuntimeHandle; ns: string };
let b: { h: RuntimeHandle; ns: string };

const sh = (h: RuntimeHandle, script: string, uid = 0) =>
  execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 60_000, uid, gid: uid });

/**
 * Runs `script` (the body of an async function with `base` = envd's URL, `fetch` available) in a
 * node process inside the netns of a capsule, where envd listens on 127.0.0.1; returns its JSON.
 */
async function fromNetns(ns: string, script: string): Promise<Record<string, unknown>> {
  const code = `(async (base) => { ${script} })('http://127.0.0.1:49983').then((r) => process.stdout.write(JSON.stringify(r)), (e) => { console.error(e); process.exit(1); })`;
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { timeout: 300_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

async function capsule(name: string): Promise<{ h: RuntimeHandle; ns: string }> {
  const ns = env.netns();
  const h = await rt.create(spec(`cl-${name}${rand()}`, 'minimal', { network: { netnsPath: ns.path, capsuleIp: '' } }));
  handles.add(h);
  // envd answers once it listens.
  const health = await fromNetns(
    ns.name,
    'for (let i = 0; i < 200; i++) { try { const r = await fetch(base + "/health"); return { status: r.status }; } catch { await new Promise((r) => setTimeout(r, 50)); } } return { status: 0 };',
  );
  assert.equal(health.status, 204, `envd of ${h.id} did not come up`);
  return { h, ns: ns.name };
}

before(async () => {
  env = makeEnv();
  rt = env.runtime();
  a = await capsule('fra');
  b = await capsule('frb');
  const setup = await sh(
    a.h,
    `printf '${MARKER}' > /root/secret && chmod 600 /root/secret &&
     printf 'root-owned\\n' > /etc/wrenn-victim && chmod 644 /etc/wrenn-victim &&
     printf 'public\\n' > /home/user/ok.txt && chown ${USER_UID}:${USER_UID} /home/user/ok.txt && echo ok`,
  );
  assert.equal(setup.stdout.trim(), 'ok', setup.stderr);
  // The attacker: the default user, re-pointing its link as fast as busybox can. (ln -sfn: busybox
  // mv would stat the destination, which the user cannot once the link points into /root; so the
  // name is briefly missing between unlink and symlink, and a request may also get 404.) Detached
  // the way the exec helper lets a process outlive the exec.
  const loop = await sh(
    a.h,
    `cd /home/user && ( (while :; do
       ln -sfn /home/user/ok.txt link; ln -sfn /root/secret link; ln -sfn /etc/wrenn-victim link
     done) >/dev/null 2>&1 </dev/null & ) ; echo started`,
    USER_UID,
  );
  assert.equal(loop.stdout.trim(), 'started', loop.stderr);
  const seen = await sh(a.h, 'for i in $(seq 1 200); do readlink /home/user/link; done 2>/dev/null | sort -u | wc -l');
  assert.ok(Number(seen.stdout.trim()) >= 2, `the swap loop is not running: ${seen.stdout} ${seen.stderr}`);
});

after(async () => {
  for (const h of handles) await rt.destroy(h).catch((err) => console.error('destroy', h.id, err));
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, [], `left behind: ${left.join(', ')}`);
});

test(`${ROUNDS} downloads as the default user through a swapped link never return root-only data`, async () => {
  const r = await fromNetns(
    a.ns,
    `const statuses = {}; let leaked = 0; let wrong = 0;
     for (let i = 0; i < ${ROUNDS}; i++) {
       const res = await fetch(base + '/files?path=/home/user/link&username=user');
       const body = await res.text();
       statuses[res.status] = (statuses[res.status] ?? 0) + 1;
       if (body.includes('${MARKER}')) leaked++;
       // /etc/wrenn-victim is world-readable: serving it is right, only the 0600 secret is not.
       if (res.status === 200 && body !== 'public\\n' && body !== 'root-owned\\n') wrong++;
     }
     return { statuses, leaked, wrong };`,
  );
  console.log(`# downloads in capsule ${a.h.id}: ${JSON.stringify(r)}`);
  const statuses = r.statuses as Record<string, number>;
  assert.equal(r.leaked, 0, 'a download returned a root-only file');
  assert.equal(r.wrong, 0);
  assert.ok((statuses['200'] ?? 0) > 0, 'the user never got its own file: the probe did not run');
  assert.ok((statuses['403'] ?? 0) > 0, 'the link never pointed elsewhere: the race was not exercised');
  // 404: the name was missing for a moment (unlink, then symlink).
  assert.deepEqual(
    Object.keys(statuses).filter((s) => !['200', '403', '404'].includes(s)),
    [],
  );
});

test(`${ROUNDS} uploads as the default user through the link never write a root-owned file, and B keeps serving`, async () => {
  const [r, neighbour] = await Promise.all([
    fromNetns(
      a.ns,
      `const statuses = {};
       for (let i = 0; i < ${ROUNDS}; i++) {
         const res = await fetch(base + '/files?path=/home/user/link&username=user', {
           method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'pwned ' + i + '\\n' });
         await res.arrayBuffer();
         statuses[res.status] = (statuses[res.status] ?? 0) + 1;
       }
       return { statuses };`,
    ),
    fromNetns(
      b.ns,
      `const statuses = {};
       for (let i = 0; i < 100; i++) {
         const res = await fetch(base + '/files?path=/etc/passwd&username=user');
         await res.arrayBuffer();
         statuses[res.status] = (statuses[res.status] ?? 0) + 1;
       }
       return { statuses };`,
    ),
  ]);
  console.log(
    `# uploads in ${a.h.id}: ${JSON.stringify(r)}; neighbour ${b.h.id} meanwhile: ${JSON.stringify(neighbour)}`,
  );
  const statuses = r.statuses as Record<string, number>;
  const check = await sh(
    a.h,
    'cat /etc/wrenn-victim /root/secret; echo; stat -c "%u %a" /etc/wrenn-victim /root/secret; cat /home/user/ok.txt',
  );
  const [victim, secret, victimStat, secretStat, mine] = check.stdout.split('\n');
  assert.equal(victim, 'root-owned', 'an upload wrote into /etc/wrenn-victim');
  assert.equal(secret, MARKER, 'an upload wrote into /root/secret');
  assert.equal(victimStat, '0 644');
  assert.equal(secretStat, '0 600');
  assert.match(mine ?? '', /^pwned \d+$/);
  assert.ok((statuses['200'] ?? 0) > 0, 'no upload reached the user file: the probe did not run');
  assert.ok((statuses['403'] ?? 0) > 0, 'the link never pointed elsewhere: the race was not exercised');
  assert.deepEqual(neighbour.statuses, { 200: 100 }, 'the neighbour capsule stopped serving files');
  // Root in A still reads its secret through envd.
  const root = await fromNetns(
    a.ns,
    "const r = await fetch(base + '/files?path=/root/secret&username=root'); return { body: await r.text() };",
  );
  assert.equal(root.body, MARKER);
});
