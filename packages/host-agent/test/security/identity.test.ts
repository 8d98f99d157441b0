// Hostile probes for per-capsule kernel identity (issue 14 items 1 and 2) on the namespace
// runtime: two capsules, A attacking as root, B the neighbour. Each capsule has a host uid range
// of its own and a user namespace owned by that range's root, so per-user kernel counts (inotify
// instances, the pipe buffer budget, the key quota) are charged per capsule; open files are charged to A's memory
// cgroup and the host's fs.file-max is out of reach. Everything made here is removed in after().
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST_ID_BASE, ID_RANGE } from '../../src/rootfs/index.js';
import { UNBOUNDED_FILE_MAX } from '../../src/runtimes/namespace/file-table.js';
import { execInCapsule, type IdRange, type NamespaceRuntime } from '../../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../../src/runtimes/runtime.js';
import { makeEnv, rand, spec, standInEnvd } from '../namespace-fixtures.js';
import { buildProbe } from './identity-probe.js';

const env = makeEnv();
const handles = new Set<RuntimeHandle>();
const probe = buildProbe();
let rt: NamespaceRuntime;
let a: RuntimeHandle;
let b: RuntimeHandle;

const rangeOf = (h: RuntimeHandle) => h.state.idRange as IdRange;
const sh = (h: RuntimeHandle, script: string) => execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 60_000 });

/** Runs the probe inside a capsule as root; returns its stdout. */
async function inside(h: RuntimeHandle, args: string): Promise<string> {
  const r = await sh(h, `/probe ${args}`);
  return r.stdout.trim();
}

/** Starts a probe in the background inside a capsule (holding what it took); waits for its report. */
async function hogInside(h: RuntimeHandle, args: string, out: string, lines = 1): Promise<string> {
  const r = await sh(h, `(/probe ${args} > ${out} 2>&1 </dev/null &) ; echo started`);
  assert.equal(r.stdout.trim(), 'started', r.stderr);
  for (let i = 0; i < 600; i++) {
    const got = (await sh(h, `cat ${out}`)).stdout.trim();
    if (got.split('\n').filter(Boolean).length >= lines) return got;
    await sleep(50);
  }
  throw new Error(`the probe ${args} in ${h.id} did not report`);
}

function hostUid(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

const hostProbe = (...args: string[]) => execFileSync(probe.path, args, { encoding: 'utf8' }).trim();

before(async () => {
  rt = env.runtime({ mainCommand: standInEnvd });
  a = await rt.create(spec(`cl-ta${rand()}`, 'minimal', { memoryMb: 128 }));
  handles.add(a);
  b = await rt.create(spec(`cl-tb${rand()}`));
  handles.add(b);
  for (const h of [a, b]) {
    const r = await execInCapsule(h, ['/bin/sh', '-c', 'base64 -d > /probe && chmod 755 /probe && echo ok'], {
      input: probe.base64,
      timeoutMs: 60_000,
    });
    assert.equal(r.stdout.trim(), 'ok', `copying the probe into ${h.id}: ${r.stderr}`);
  }
});

after(async () => {
  for (const h of handles)
    await env
      .runtime()
      .destroy(h)
      .catch((err) => console.error('destroy', h.id, err));
  probe.cleanup();
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, [], `left behind: ${left.join(', ')}`);
});

test('each capsule runs as a host uid range of its own, and owns its user namespace', async () => {
  const [ra, rb] = [rangeOf(a), rangeOf(b)];
  assert.ok(ra && rb, 'capsules carry their id range in their state');
  assert.ok(Math.abs(ra.base - rb.base) >= ID_RANGE, `ranges overlap: ${ra.base} and ${rb.base}`);
  for (const r of [ra, rb]) {
    assert.ok(r.base > 0, 'a capsule range holds host root');
    assert.ok(
      r.base >= HOST_ID_BASE + ID_RANGE || r.base + ID_RANGE <= HOST_ID_BASE,
      `range ${r.base} overlaps the storage range ${HOST_ID_BASE}..${HOST_ID_BASE + ID_RANGE - 1}`,
    );
  }
  // Seen from the host: the capsules' inits (root inside) run as their own range's first id...
  const pidA = a.state.pid as number;
  const pidB = b.state.pid as number;
  assert.equal(hostUid(pidA), ra.base);
  assert.equal(hostUid(pidB), rb.base);
  // ...inside they are root, and the default user is 1000 (host base + 1000).
  assert.equal((await sh(a, 'id -u; cat /proc/self/uid_map')).stdout.split('\n')[0], '0');
  const user = await execInCapsule(a, ['/bin/sh', '-c', 'id -u'], { uid: 1000, timeoutMs: 20_000 });
  assert.equal(user.stdout.trim(), '1000');
  // The capsule's user namespace belongs to its own root's host uid, not to host root, so the
  // kernel's per-user counts of everything in it are charged to that uid.
  assert.equal(Number(hostProbe('userns-owner', String(pidA))), ra.base);
  assert.equal(Number(hostProbe('userns-owner', String(pidB))), rb.base);
  // RLIMIT_NOFILE is set for the capsule (1024:524288, capped at what the agent itself has).
  const [soft, hard] = (await sh(a, 'ulimit -n; ulimit -Hn')).stdout.trim().split('\n').map(Number);
  const agentHard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]);
  assert.equal(soft, Math.min(1024, agentHard));
  assert.equal(hard, Math.min(524288, agentHard));
  if (hard < 524288)
    console.log(
      `# this host withholds CAP_SYS_RESOURCE from root: RLIMIT_NOFILE inside is ${soft}:${hard}, not 1024:524288`,
    );
  // The template's files show as the capsule's own ids while they stay stored as 100000 + u.
  assert.equal((await sh(a, 'stat -c %u:%g /bin/busybox /root')).stdout.trim(), '0:0\n0:0');
});

test('inotify: A exhausting its instances leaves B and host root able to create them', async () => {
  const report = await hogInside(a, 'inotify-hog 120', '/tmp/inotify.out');
  console.log(`# capsule A: ${report}`);
  assert.match(report, /^instances \d+ EMFILE$/, 'the hog in A was not stopped by the per-user limit');
  assert.equal(await inside(a, 'inotify-one'), 'EMFILE', 'A is not at its limit: the attack did not bite');
  assert.equal(await inside(b, 'inotify-one'), 'ok', 'B lost inotify to A');
  assert.equal(hostProbe('inotify-one'), 'ok', 'host root lost inotify to A');
  // The default user of A shares A's budget (the kernel charges every id in A's user namespace
  // to the namespace's owner, A's root range): with root's hog alive it gets none, B still does.
  const asUser = await execInCapsule(a, ['/probe', 'inotify-hog', '0'], { uid: 1000, timeoutMs: 60_000 });
  console.log(`# capsule A, user 1000: ${asUser.stdout.trim()}`);
  assert.match(asUser.stdout, /^instances 0 EMFILE$/m);
  assert.equal(await inside(b, 'inotify-one'), 'ok', 'B lost inotify to the default user of A');
  assert.equal(hostProbe('inotify-one'), 'ok', 'host root lost inotify to the default user of A');
  await sh(a, 'killall probe');
});

test('pipes: A exhausting its pipe buffer budget leaves B with 64 KiB pipes', async () => {
  const report = await hogInside(a, 'pipes-hog 120', '/tmp/pipes.out');
  console.log(`# capsule A: ${report}`);
  // Past its budget a user's new pipes get the minimum (2 pages), not 64 KiB.
  assert.match(report, /^pipes \d+ size (4096|8192)$/, 'A never reached its pipe budget');
  assert.ok(Number(await inside(a, 'pipe-size')) < 65536, 'A is not at its budget: the attack did not bite');
  assert.equal(await inside(b, 'pipe-size'), '65536', "B's pipes shrank because of A");
  await sh(a, 'killall probe');
});

test("keys: A cannot read B's key, and A filling its key quota leaves B's", async () => {
  const mine = await inside(b, 'key-add wrenn-b-secret');
  if (/^E(PERM|NOSYS|ACCES)$/.test(mine)) {
    // A seccomp filter that refuses the key syscalls outright contains this attack already.
    console.log(`# keys: add_key is refused inside capsules (${mine}): no key state to share`);
    assert.equal(await inside(a, 'key-add wrenn-a'), mine);
    return;
  }
  assert.match(mine, /^\d+$/, `B could not add a key: ${mine}`);
  assert.notEqual(await inside(a, `key-read ${mine}`), 'read', "A read B's key");
  assert.doesNotMatch((await sh(a, 'cat /proc/keys')).stdout, /wrenn-b-secret/, "A sees B's key in /proc/keys");
  const report = await inside(a, 'keys-hog');
  console.log(`# capsule A: ${report}`);
  assert.match(report, /^keys \d+ EDQUOT$/, 'the key hog in A was not stopped by the per-user key quota');
  assert.match(await inside(b, 'key-add wrenn-b-after'), /^\d+$/, 'B lost its key quota to A');
});

test('an agent restart keeps the ranges: a new runtime re-adopts A and B and hands C another range', async () => {
  const rt2 = env.runtime({ mainCommand: standInEnvd });
  // A claim of a capsule nobody knows (a crash between create and record) is released.
  const ghost = `cl-ghost${rand()}`;
  const ghostRange = await rt2.idRanges.allocate(ghost);
  await rt2.cleanupStale(new Set([a.id, b.id]));
  const claims = await rt2.idRanges.list();
  assert.equal(claims.get(rangeOf(a).slot), a.id);
  assert.equal(claims.get(rangeOf(b).slot), b.id);
  assert.equal(claims.has(ghostRange.slot), false, 'a stale claim survived cleanupStale');
  assert.equal(hostUid(a.state.pid as number), rangeOf(a).base);
  const c = await rt2.create(spec(`cl-tc${rand()}`));
  handles.add(c);
  const rc = rangeOf(c);
  for (const r of [rangeOf(a), rangeOf(b)]) assert.ok(Math.abs(rc.base - r.base) >= ID_RANGE, 'C shares a range');
  assert.equal(hostUid(c.state.pid as number), rc.base);
  await rt2.destroy(c);
  handles.delete(c);
  assert.equal((await rt2.idRanges.list()).has(rc.slot), false, 'destroy did not release the range');
});

test('file table: many processes holding many fds in A cannot reach fs.file-max; B still opens files', async () => {
  const fileNr = () =>
    readFileSync('/proc/sys/fs/file-nr', 'utf8').trim().split(/\s+/).map(Number) as [number, number, number];
  const [before] = fileNr();
  const fileMax = BigInt(readFileSync('/proc/sys/fs/file-max', 'utf8').trim());
  const memLimit = Number(
    readFileSync(
      `${(a.state.cgroupDirs as string[]).find((d) => d.includes('/memory/'))}/memory.limit_in_bytes`,
      'utf8',
    ),
  );
  let peak = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, fileNr()[0]);
      await sleep(20);
    }
  })();
  // 64 processes that each open files until refused: far more than the old file-max's worth of
  // attempts (64 x the hard RLIMIT_NOFILE), stopped by A's memory cgroup first.
  await sh(a, '(/probe fd-hog 64 120 > /tmp/fds.out 2>&1 </dev/null &); echo started').catch(() => undefined);
  let settled = 0;
  for (let i = 0, last = -1; i < 600 && settled < 10; i++) {
    await sleep(100);
    const now = fileNr()[0];
    settled = Math.abs(now - last) < 1000 ? settled + 1 : 0;
    last = now;
  }
  // B and host root keep opening files during the attack.
  assert.equal(await inside(b, 'open-one'), 'ok', 'B could not open a file during the attack');
  assert.equal(hostProbe('open-one'), 'ok', 'host root could not open a file during the attack');
  sampling = false;
  await sampler;
  const grown = peak - before;
  const cg = (a.state.cgroupDirs as string[]).find((d) => d.includes('/memory/'))!;
  const ooms = /oom_kill (\d+)/.exec(readFileSync(`${cg}/memory.oom_control`, 'utf8'))?.[1];
  const failcnt = readFileSync(`${cg}/memory.failcnt`, 'utf8').trim();
  console.log(
    `# file-nr grew by ${grown} (peak ${peak}, fs.file-max ${fileMax}); A's memory limit ${memLimit} B, ` +
      `memcg failcnt ${failcnt}, OOM kills ${ooms}`,
  );
  assert.ok(BigInt(peak) < fileMax, 'the host file table reached fs.file-max');
  // No capsule can reach the count at all: the runtime raised it to the kernel's maximum, so
  // every capsule's memory limit is what bounds its files (a capsule given more memory than
  // 10 % of RAM, where the default fs.file-max lies, would otherwise fill the table).
  assert.equal(fileMax, UNBOUNDED_FILE_MAX, 'fs.file-max was not raised: a large capsule could fill the table');
  // Every open file costs A's memory cgroup kernel memory: A's share is bounded by its limit
  // (at least ~200 B per file here; 128 B leaves room).
  assert.ok(grown <= memLimit / 128, `A held ${grown} files with a ${memLimit} B memory limit`);
  assert.ok(grown > 10_000, `the attack did not open many files (${grown}): it proves nothing`);
  assert.ok(
    Number(failcnt) > 0 || Number(ooms) > 0,
    "A's memory cgroup never refused a charge nor OOM-killed: the attack was not contained by it",
  );
  assert.equal(await inside(b, 'open-one'), 'ok');
  assert.equal((await sh(b, 'echo alive')).stdout.trim(), 'alive', 'B stopped working');
});
