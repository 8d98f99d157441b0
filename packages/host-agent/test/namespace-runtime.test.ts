// The namespace runtime on this machine's real kernel: namespaces, cgroup v1, overlayfs, envd.
// Needs root. Every capsule is destroyed and every cgroup, netns and directory removed even when
// an assertion fails (t.after / after).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FailedPreconditionError } from '@wrenn/protocol';
import { execInCapsule, type NamespaceRuntime, readStartTime } from '../src/runtimes/namespace/index.js';
import { ENVD_NODE_FLAGS, envdScript } from '../src/runtimes/namespace/node-runtime.js';
import type { RuntimeHandle } from '../src/runtimes/runtime.js';
import { makeEnv, rand, spec, standInEnvd } from './namespace-fixtures.js';

const env = makeEnv();
const handles = new Set<RuntimeHandle>();

after(async () => {
  const rt = env.runtime();
  for (const h of handles) await rt.destroy(h).catch((err) => console.error('destroy', h.id, err));
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, [], `left behind after the suite: ${left.join(', ')}`);
});

async function start(rt: NamespaceRuntime, id: string, extra: Parameters<typeof spec>[2] = {}, template = 'minimal') {
  const h = await rt.create(spec(id, template, extra));
  handles.add(h);
  console.log(
    `# ${id}: created in ${rt.lastCreateTimings?.total.toFixed(1)} ms`,
    JSON.stringify(rt.lastCreateTimings, (_, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)),
  );
  return h;
}

async function destroy(rt: NamespaceRuntime, h: RuntimeHandle) {
  await rt.destroy(h);
  handles.delete(h);
}

/** The capsule's overlay upper dir on the host (on its own disk unless diskMb is 0). */
function upperOf(h: RuntimeHandle): string {
  return join(h.state.sandboxDir as string, h.state.ownDisk ? 'disk/upper' : 'upper');
}

async function sh(h: RuntimeHandle, script: string, opts: Parameters<typeof execInCapsule>[2] = {}) {
  return execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 20_000, ...opts });
}

test('minimal template builds (cached) and a capsule runs the real envd in the given network namespace', async () => {
  const m = await env.store.ensureTemplate('minimal');
  assert.equal(m.kind, 'base');
  const ns = env.netns();
  const rt = env.runtime({ trace: true });
  const id = `cl-t${rand()}`;
  const h = await start(rt, id, { network: { netnsPath: ns.path, capsuleIp: '' } });
  assert.equal(await rt.isAlive(h), true);
  // The capsule is in the netns we gave it: the host can reach envd through it.
  const health = execFileSync(
    'ip',
    ['netns', 'exec', ns.name, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:49983/health'],
    { encoding: 'utf8' },
  );
  assert.equal(health, '204');
  // And from inside (busybox wget), with the environment envd was given.
  const inside = await sh(
    h,
    'wget -q -S -O /dev/null http://127.0.0.1:49983/health 2>&1 | head -1; cat /proc/2/environ | tr "\\0" "\\n" | grep ^WRENN_',
  );
  assert.match(inside.stdout, /HTTP\/1\.1 204/);
  assert.match(inside.stdout, new RegExp(`WRENN_SANDBOX_ID=${id}`));
  assert.match(inside.stdout, /WRENN_TEMPLATE_ID=minimal/);
  assert.match(inside.stdout, /WRENN_CAPSULE=1/);
  // envd is PID 2 under our init; its children must not inherit the runtime's library path.
  const ps = await sh(h, 'cat /proc/1/comm; cat /proc/2/cmdline | tr "\\0" " "');
  assert.match(ps.stdout, /^wrenn-init\n/);
  const envdArgv = `/opt/wrenn/runtime/lib/ld-linux-x86-64.so.2 --library-path /opt/wrenn/runtime/lib /opt/wrenn/runtime/bin/node ${[...ENVD_NODE_FLAGS, envdScript()].join(' ')} --port 49983`;
  assert.ok(
    ps.stdout.includes(envdArgv),
    `envd's command line should be\n${envdArgv}\nbut /proc/2/cmdline is\n${ps.stdout}`,
  );
  assert.match(envdScript(), /^\/opt\/wrenn\/envd\/start\.cjs$/);
  assert.doesNotMatch((await sh(h, 'env')).stdout, /LD_LIBRARY_PATH/);
  // envd said "ready" itself on the init's pipe (no /health poll), and what it starts inherits
  // neither that pipe nor its variable: a command through envd sees only its stdio.
  // (The init's output reaches envd.log through the helper's pipe: it may land just after "ready".)
  const logPath = join(h.state.sandboxDir as string, 'envd.log');
  for (let i = 0; i < 100 && !/main process ready \(said so\)/.test(readFileSync(logPath, 'utf8')); i++)
    await sleep(20);
  assert.match(readFileSync(logPath, 'utf8'), /main process ready \(said so\)/);
  const body = JSON.stringify({ process: { cmd: '/bin/sh', args: ['-c', 'ls /proc/self/fd; env'] } });
  const viaEnvd = await sh(
    h,
    // Connect over raw HTTP (busybox wget cannot post NUL bytes): an envelope is flags and length
    // (4 bytes, big-endian), then the message.
    `{ printf 'POST /process.Process/Start HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/connect+json\\r\\n` +
      `Content-Length: ${body.length + 5}\\r\\nConnection: close\\r\\n\\r\\n'; head -c 4 /dev/zero; ` +
      `printf '\\${body.length.toString(8)}%s' '${body}'; sleep 1; } | nc 127.0.0.1 49983`,
  );
  const output = [...viaEnvd.stdout.matchAll(/"stdout":"([^"]*)"/g)]
    .map((m) => Buffer.from(m[1] ?? '', 'base64').toString())
    .join('');
  assert.match(
    output,
    /^0\n1\n2\n3\n/,
    `a command's fds (3 is ls's own directory): ${output} ${viaEnvd.stdout} ${viaEnvd.stderr}`,
  );
  assert.doesNotMatch(output, /\n4\n|WRENN_READY_FD/);
  assert.match(output, /WRENN_SANDBOX_ID=/);
  // The capsule sees its own cgroups (read-only) and envd's metrics report its real memory limit.
  assert.equal(
    (await sh(h, 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes')).stdout.trim(),
    String(256 * 1024 * 1024),
  );
  assert.notEqual((await sh(h, 'echo 999999999999 > /sys/fs/cgroup/memory/memory.limit_in_bytes')).code, 0);
  assert.notEqual((await sh(h, 'echo 0 > /sys/fs/cgroup/pids/tasks')).code, 0);
  const metrics = JSON.parse(
    execFileSync('ip', ['netns', 'exec', ns.name, 'curl', '-s', 'http://127.0.0.1:49983/metrics'], {
      encoding: 'utf8',
    }),
  ) as Record<string, number>;
  console.log(`# envd /metrics inside the capsule: ${JSON.stringify(metrics)}`);
  assert.equal(metrics.mem_total, 256 * 1024 * 1024);
  console.log(
    `# helper step timings:\n${readFileSync(join(h.state.sandboxDir as string, 'envd.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('wrenn-nsinit'))
      .join('\n')}`,
  );
  await destroy(rt, h);
  assert.equal(readStartTime(h.state.pid as number) === h.state.startTime, false, 'init still running after destroy');
  assert.equal(existsSync(h.state.sandboxDir as string), false);
  assert.equal(await rt.isAlive(h), false);
});

test('isolation: own pids, hostname, user namespace mapping, no host capabilities', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const id = `cl-t${rand()}`;
  const h = await start(rt, id);
  const ps = await sh(h, 'ps -o pid | tail -n +2 | wc -l');
  const count = Number(ps.stdout.trim());
  assert.ok(
    count >= 3 && count <= 6,
    `ps inside should see only init, the main process and itself, saw ${count}:\n${(await sh(h, 'ps')).stdout}`,
  );
  assert.equal((await sh(h, 'hostname')).stdout.trim(), id);
  // Root inside is the first id of the capsule's own host range, never the storage range 100000..
  const base = (h.state.idRange as { base: number }).base;
  assert.ok(base >= 165536, `capsule root is host uid ${base}`);
  assert.match((await sh(h, 'cat /proc/self/uid_map')).stdout, new RegExp(`^\\s*0\\s+${base}\\s+65536\\s*$`));
  // A file root creates inside is stored as the canonical uid 100000 (the upper layer is seen
  // through an idmapped mount), so snapshots of it are shared like template layers.
  assert.equal((await sh(h, 'echo hi > /root/made-inside && id -u')).stdout.trim(), '0');
  const st = statSync(join(upperOf(h), 'root/made-inside'));
  assert.equal(st.uid, 100000);
  assert.equal(st.gid, 100000);
  // The user account maps too.
  assert.equal((await sh(h, 'touch /tmp/u && id -u', { uid: 1000, gid: 1000 })).stdout.trim(), '1000');
  assert.equal(statSync(join(upperOf(h), 'tmp/u')).uid, 101000);
  // Root inside cannot touch host files or reconfigure its namespaces.
  const denied: [string, string][] = [
    ['write into the bind-mounted Wrenn install', 'echo x > /opt/wrenn/envd/pwned'],
    ['write into the bind-mounted node runtime', 'echo x > /opt/wrenn/runtime/bin/node'],
    ['write through /proc/1/root into a bind mount', 'echo x > /proc/1/root/opt/wrenn/envd/pwned'],
    ['remount the install read-write', 'mount -o remount,rw /opt/wrenn/envd'],
    ['unmount a bind mount', 'umount /opt/wrenn/runtime/bin/node'],
    ['mount a tmpfs', 'mount -t tmpfs x /mnt'],
    ['change the hostname', 'hostname evil'],
    ['reconfigure the network', 'ip link set lo down'],
    ['write /sys', 'echo 1 > /sys/kernel/mm/ksm/run'],
    ['trigger sysrq', 'echo h > /proc/sysrq-trigger'],
    ['read kernel memory', 'head -c 1 /proc/kcore'],
    ['create a device node', 'mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda'],
  ];
  for (const [what, cmd] of denied) {
    const r = await sh(h, cmd);
    assert.notEqual(r.code, 0, `root inside could ${what}: ${cmd}\n${r.stdout}${r.stderr}`);
  }
  assert.equal(existsSync('/work/main/pwned'), false);
  // But root inside does own its files: chown between mapped ids works (package managers need it).
  assert.equal((await sh(h, 'touch /tmp/c && chown 1000:1000 /tmp/c && stat -c %u /tmp/c')).stdout.trim(), '1000');
  // The host's processes are invisible: the test runner's pid is not in the capsule's /proc.
  assert.equal(
    (await sh(h, `test -e /proc/${process.pid}/cmdline && cat /proc/${process.pid}/cmdline; true`)).stdout.includes(
      'node',
    ),
    false,
  );
  await destroy(rt, h);
});

test("a fork bomb stops at the capsule's task cap and the host goes on", async () => {
  const rt = env.runtime({ mainCommand: standInEnvd, pidsMax: 64 });
  const h = await start(rt, `cl-t${rand()}`);
  const cg = rt.cgroups(h.id);
  // Runs detached from our pipes. Every bomb process forks copies of itself in a loop, so when a
  // fork is refused and that shell dies, the others refill its slot: the bomb keeps pressing on the
  // cap instead of collapsing once the first refusals come (as `bomb | bomb &` can).
  await sh(h, 'bomb() { while :; do (bomb) & done; }; (bomb) >/dev/null 2>&1 </dev/null &', { timeoutMs: 5000 });
  // The cap is RLIMIT_NPROC (set by wrenn-nsinit to pids.max, refused early in fork) and pids.max
  // behind it: the bomb's task count must reach it and never pass it.
  let peak = 0;
  for (const until = Date.now() + 1500; Date.now() < until; await sleep(10)) {
    peak = Math.max(peak, Number(cg.read('pids', 'pids.current')));
  }
  const refused = Number(/max (\d+)/.exec(cg.read('pids', 'pids.events'))?.[1] ?? 0);
  console.log(`# fork bomb: pids.current peak ${peak} (cap 64), refused by pids.max ${refused}`);
  assert.ok(peak <= 64, `pids.current ${peak} above the limit`);
  assert.ok(peak >= 48, `the bomb reached only ${peak} tasks: was it running?`);
  // The host still forks.
  assert.equal(execFileSync('sh', ['-c', 'echo ok'], { encoding: 'utf8' }).trim(), 'ok');
  // destroy freezes, kills and waits: the bomb cannot outrun it.
  await destroy(rt, h);
  assert.equal(cg.exists(), false);
});

test('a memory hog is OOM-killed inside the capsule while the capsule and host go on', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const h = await start(rt, `cl-t${rand()}`, { memoryMb: 128 });
  const cg = rt.cgroups(h.id);
  assert.equal(Number(cg.read('memory', 'memory.limit_in_bytes')), 128 * 1024 * 1024);
  // dd allocates its 400 MiB block and fills it: far above the 128 MiB limit.
  const r = await sh(h, 'exec dd if=/dev/zero of=/dev/null bs=400M count=1', { timeoutMs: 30_000 });
  console.log(`# memory hog exit code ${r.code}, oom kills ${cg.oomKills()}`);
  assert.equal(r.code, 137, `the hog should die by SIGKILL (137), got ${r.code}: ${r.stderr}`);
  assert.ok(cg.oomKills() >= 1, 'the memory cgroup did not record an OOM kill');
  assert.equal(await rt.isAlive(h), true, 'the capsule init died with the hog');
  assert.equal((await sh(h, 'echo alive')).stdout.trim(), 'alive');
  await destroy(rt, h);
});

test('a capsule filling its disk stops at its own quota (ENOSPC inside); df shows its own disk', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd, diskMb: 48 });
  await rt.prepare();
  const h = await start(rt, `cl-t${rand()}`);
  const df = await sh(h, "df -k / | tail -n 1 | awk '{print $2}'");
  const totalKb = Number(df.stdout.trim());
  assert.ok(
    totalKb > 30 * 1024 && totalKb <= 48 * 1024,
    `df / inside should show the 48 MiB disk, got ${df.stdout} ${df.stderr}`,
  );
  const fill = await sh(h, 'dd if=/dev/zero of=/big bs=1M count=100 2>&1; echo "exit=$?"', { timeoutMs: 30_000 });
  console.log(`# filling the disk: ${fill.stdout.trim().split('\n').slice(-2).join(' | ')}`);
  assert.match(fill.stdout, /No space left on device/);
  assert.doesNotMatch(fill.stdout, /exit=0/);
  const image = statSync(join(rt.sandboxesDir, h.id, 'disk.img'));
  assert.ok(image.blocks * 512 <= 48 * 1024 * 1024, `the disk image grew past its size: ${image.blocks * 512} bytes`);
  // Space comes back when the file goes; the capsule carries on.
  assert.equal((await sh(h, 'rm /big && echo fine > /after && cat /after')).stdout.trim(), 'fine');
  await destroy(rt, h);
});

test('freeze stops a running counter and thaw continues it', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const h = await start(rt, `cl-t${rand()}`);
  const counterFile = join(upperOf(h), 'tmp/counter');
  await sh(h, '(i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; usleep 20000; done) >/dev/null 2>&1 </dev/null &');
  // The loop truncates and rewrites the file: compare raw contents while frozen, and poll for
  // a larger number after thaw (a busy machine may take a while to schedule the loop).
  const raw = () => readFileSync(counterFile, 'utf8');
  const num = () => Number(raw().trim() || Number.NaN);
  const waitAbove = async (n: number) => {
    for (let i = 0; i < 300; i++) {
      if (existsSync(counterFile) && num() > n) return true;
      await sleep(10);
    }
    return false;
  };
  assert.ok(await waitAbove(2), 'the counter did not start');
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const p = await rt.pause(h, 'freeze');
    const t1 = performance.now();
    assert.equal(p.processesKept, true);
    const frozenAt = raw();
    await sleep(200);
    assert.equal(raw(), frozenAt, 'the counter moved while frozen');
    assert.equal(rt.cgroups(h.id).freezerState(), 'FROZEN');
    assert.equal(await rt.isAlive(h), true);
    const t2 = performance.now();
    await rt.resume(h);
    times.push(t1 - t0 + (performance.now() - t2));
    assert.ok(await waitAbove(Number(frozenAt.trim() || 0)), 'the counter did not continue after thaw');
  }
  times.sort((a, b) => a - b);
  console.log(`# freeze+thaw p50 ${times[2]?.toFixed(2)} ms (all: ${times.map((t) => t.toFixed(2)).join(' ')})`);
  await destroy(rt, h);
});

test('stats report cpu, memory, pids and the upper layer disk use', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const h = await start(rt, `cl-t${rand()}`, { memoryMb: 192 });
  await sh(h, 'dd if=/dev/urandom of=/root/blob bs=1M count=3 2>/dev/null');
  const s = await rt.stats(h);
  console.log(`# stats ${JSON.stringify(s, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  assert.ok(s.cpuUsageNs > 0n);
  assert.ok(s.memoryBytes > 1024 * 1024);
  assert.equal(s.memoryLimitBytes, 192 * 1024 * 1024);
  assert.ok(s.pids >= 2);
  assert.ok(s.diskUsedBytes >= 3 * 1024 * 1024, `disk used ${s.diskUsedBytes} < 3 MiB just written`);
  // The counter alone (the metrics history's per-capsule read: a kept-open file read again at offset
  // 0) is the same counter and moves with the capsule's work; the parent's totals include it.
  const c1 = rt.cpuUsageNs(h) ?? -1n;
  assert.ok(c1 >= s.cpuUsageNs, `counter ${c1} < ${s.cpuUsageNs} read before`);
  await sh(h, 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done');
  const c2 = rt.cpuUsageNs(h) ?? -1n;
  assert.ok(c2 > c1, `the counter did not move with work (${c1} -> ${c2}): a stale read`);
  assert.ok((rt.memoryBytes(h) ?? 0) > 1024 * 1024, 'the memory read alone');
  const all = rt.allUsage();
  assert.ok(all && all.cpuNs >= c2 && all.memoryBytes > 0n, `totals ${all?.cpuNs} / ${all?.memoryBytes}`);
  await destroy(rt, h);
  assert.deepEqual(openFilesOf(h.id), [], 'a destroyed capsule left files open in the agent');
  assert.equal(rt.cpuUsageNs(h), undefined, 'a destroyed capsule has no counter');
  assert.equal(rt.memoryBytes(h), undefined);
  assert.deepEqual(openFilesOf(h.id), []);
});

/** The agent's (this process's) open files under a capsule's cgroups. */
function openFilesOf(id: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('/sys/fs/cgroup/') && target.includes(id)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

test('a snapshot template carries files (and deletions) into new capsules, stacked over its parent', async (t) => {
  const rt = env.runtime();
  const snap1 = `test-snap-${rand()}`;
  const snap2 = `${snap1}-b`;
  t.after(async () => {
    for (const n of [snap2, snap1]) await env.store.deleteTemplate(n).catch(() => undefined);
  });
  const a = await start(rt, `cl-t${rand()}`);
  await sh(a, 'echo "from A" > /home/user/hello.txt && rm /etc/os-release && mkdir -p /srv/app && echo 1 > /srv/app/x');
  await rt.snapshot(a, snap1);
  assert.equal(rt.cgroups(a.id).freezerState(), 'THAWED', 'snapshot must thaw the capsule again');
  assert.equal((await sh(a, 'echo still-running')).stdout.trim(), 'still-running');
  await destroy(rt, a);

  const minimal = (await env.store.get('minimal'))?.layers ?? []; // ['minimal'], or minimal.v<version> after a recipe change
  const m1 = await env.store.get(snap1);
  assert.deepEqual(m1?.layers, [snap1, ...minimal]);
  assert.equal(m1?.kind, 'snapshot');
  assert.equal(m1?.parent, 'minimal');

  const b = await start(rt, `cl-t${rand()}`, {}, snap1);
  assert.equal((await sh(b, 'cat /home/user/hello.txt')).stdout, 'from A\n');
  assert.notEqual((await sh(b, 'cat /etc/os-release')).code, 0, 'a file deleted before the snapshot came back');
  assert.equal((await sh(b, 'cat /srv/app/x')).stdout, '1\n');
  await sh(b, 'echo "from B" > /home/user/second.txt && rm -r /srv/app');
  await rt.snapshot(b, snap2);
  await destroy(rt, b);

  const c = await start(rt, `cl-t${rand()}`, {}, snap2);
  assert.equal((await sh(c, 'cat /home/user/hello.txt /home/user/second.txt')).stdout, 'from A\nfrom B\n');
  assert.notEqual((await sh(c, 'ls /srv/app')).code, 0, 'a directory removed in B came back in C');
  await destroy(rt, c);

  assert.deepEqual((await env.store.get(snap2))?.layers, [snap2, snap1, ...minimal]);
  await assert.rejects(
    env.store.deleteTemplate(snap1),
    (e: unknown) => e instanceof FailedPreconditionError && /used by/.test(e.message),
  );
  await assert.rejects(
    env.store.deleteTemplate('minimal'),
    (e: unknown) => e instanceof FailedPreconditionError && /base template/.test(e.message),
  );
  await env.store.deleteTemplate(snap2);
  await env.store.deleteTemplate(snap1);
  assert.equal(await env.store.get(snap1), undefined);
});

test('hibernate keeps the disk, stops the processes and frees the cgroups; resume restarts envd', async () => {
  const rt = env.runtime();
  const h = await start(rt, `cl-t${rand()}`);
  await sh(h, 'echo kept > /root/note');
  const oldPid = h.state.pid;
  const before = rt.cpuUsageNs(h) ?? -1n; // opens the counter file kept for the metrics history
  assert.ok(before > 0n);
  const r = await rt.pause(h, 'hibernate');
  assert.deepEqual(openFilesOf(h.id), [], 'the removed cgroup is still held open');
  assert.equal(r.processesKept, false);
  assert.match(r.keeps, /disk/);
  assert.equal(await rt.isAlive(h), false);
  assert.equal(rt.cgroups(h.id).exists(), false, 'hibernate should release the cgroups (and their memory)');
  assert.equal(readFileSync(join(upperOf(h), 'root/note'), 'utf8'), 'kept\n');
  await assert.rejects(rt.pause(h, 'hibernate'), /already paused/);
  // A host reboot while it sleeps takes the disk's mount away: resume mounts it again.
  execFileSync('umount', [join(h.state.sandboxDir as string, 'disk')]);
  const h2 = await rt.resume(h);
  handles.add(h2);
  assert.notEqual(h2.state.pid, oldPid);
  assert.equal(await rt.isAlive(h2), true);
  // The counter is read from the new group, and moves with the capsule's work there.
  const after = rt.cpuUsageNs(h2);
  assert.ok(after !== undefined, 'no counter after resume');
  const file = () => BigInt(readFileSync(`${rt.cgroups(h2.id).dirs.cpuacct}/cpuacct.usage`, 'utf8').trim());
  assert.ok(after <= file());
  await sh(h2, 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done');
  assert.ok((rt.cpuUsageNs(h2) ?? -1n) > after, 'the counter after resume did not move with work');
  assert.equal(
    (await sh(h2, 'cat /root/note; wget -q -S -O /dev/null http://127.0.0.1:49983/health 2>&1 | head -1')).stdout.split(
      '\n',
    )[0],
    'kept',
  );
  await destroy(rt, h2);
  handles.delete(h);
});

test('per-capsule /etc/hosts, /etc/hostname and /etc/resolv.conf are bound in and stay out of the upper layer', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd, dnsServers: ['192.0.2.53'] });
  const id = `cl-t${rand()}`;
  const h = await start(rt, id);
  const r = await sh(
    h,
    'cat /etc/hostname; grep -c " *" /etc/hosts >/dev/null && grep 127.0.1.1 /etc/hosts; cat /etc/resolv.conf; echo "10.9.9.9 extra" >> /etc/hosts && tail -1 /etc/hosts',
  );
  assert.equal(r.stdout, `${id}\n127.0.1.1\t${id}\nnameserver 192.0.2.53\n10.9.9.9 extra\n`, r.stderr);
  assert.equal(existsSync(join(upperOf(h), 'etc/hosts')), false, '/etc/hosts was written into the upper layer');
  // A pooled capsule takes its user-visible name: root inside cannot, the runtime can.
  assert.notEqual((await sh(h, 'hostname cl-other')).code, 0);
  await rt.setHostname(h, 'cl-renamed');
  assert.equal(
    (await sh(h, 'hostname; cat /etc/hostname; grep -c cl-renamed /etc/hosts')).stdout,
    'cl-renamed\ncl-renamed\n1\n',
  );
  await assert.rejects(rt.setHostname(h, 'bad name!'), /invalid hostname/);
  await destroy(rt, h);
});

test('a capsule without a prepared network gets loopback only', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const h = await start(rt, `cl-t${rand()}`);
  const links = (await sh(h, 'ls /sys/class/net')).stdout.trim().split(/\s+/);
  assert.deepEqual(links, ['lo']);
  await destroy(rt, h);
});

test('create fails cleanly: unknown template, bad spec, duplicate id, main process that never answers', async () => {
  const rt = env.runtime({ mainCommand: (node) => [...node, '-e', 'process.exit(3)'] });
  await assert.rejects(rt.create(spec(`cl-t${rand()}`, 'no-such-template')), /does not exist/);
  await assert.rejects(rt.create(spec('BAD ID')), /invalid capsule spec/);
  await assert.rejects(rt.create(spec(`cl-t${rand()}`, 'minimal', { memoryMb: 1 })), /memoryMb/);
  const id = `cl-t${rand()}`;
  await assert.rejects(rt.create(spec(id)), /exited with code 3/);
  assert.equal(existsSync(rt.sandboxDir(id)), false, 'a failed create left its sandbox dir');
  assert.equal(rt.cgroups(id).exists(), false, 'a failed create left its cgroups');
  const ok = env.runtime({ mainCommand: standInEnvd });
  const h = await start(ok, id);
  await assert.rejects(ok.create(spec(id)), /already exists/);
  assert.equal(await ok.isAlive(h), true, 'a duplicate create must not harm the existing capsule');
  await destroy(ok, h);
});

test('cleanupStale removes capsules the agent no longer knows and keeps the known ones', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const keep = await start(rt, `cl-t${rand()}`);
  const lost = await start(rt, `cl-t${rand()}`);
  await rt.cleanupStale(new Set([keep.id]));
  assert.equal(await rt.isAlive(lost), false);
  assert.equal(existsSync(lost.state.sandboxDir as string), false);
  assert.equal(rt.cgroups(lost.id).exists(), false);
  handles.delete(lost);
  assert.equal(await rt.isAlive(keep), true);
  assert.equal((await sh(keep, 'echo fine')).stdout.trim(), 'fine');
  await destroy(rt, keep);
});

test('a capsule outlives the agent process that made it and is re-adopted from its handle', async () => {
  // A separate Node process plays the agent: it creates a capsule, prints the handle and exits.
  const modUrl = new URL('../src/runtimes/namespace/index.js', import.meta.url).href;
  const storeUrl = new URL('../src/rootfs/index.js', import.meta.url).href;
  const id = `cl-t${rand()}`;
  const script = `
    const { NamespaceRuntime } = await import(${JSON.stringify(modUrl)});
    const { TemplateStore } = await import(${JSON.stringify(storeUrl)});
    const rt = new NamespaceRuntime({ dataDir: ${JSON.stringify(env.dataDir)}, cgroupParent: ${JSON.stringify(env.cgroupParent)},
      templates: new TemplateStore({ imagesDir: ${JSON.stringify(env.store.imagesDir)} }),
      mainCommand: (node) => [...node, '-e', "require('http').createServer((q,s)=>{s.writeHead(204);s.end()}).listen(49983)"] });
    const h = await rt.create(${JSON.stringify(spec(id))});
    process.stdout.write(JSON.stringify(h));
    process.exit(0);`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const h = JSON.parse(out) as RuntimeHandle;
  handles.add(h);
  const rt = env.runtime({ mainCommand: standInEnvd });
  assert.equal(await rt.isAlive(h), true, 'the capsule died with the agent process');
  assert.equal((await sh(h, 'hostname')).stdout.trim(), id);
  assert.ok((await rt.stats(h)).pids >= 2);
  await rt.pause(h, 'freeze');
  await rt.resume(h);
  await destroy(rt, h);
  assert.equal(await rt.isAlive(h), false);
});

test('capsules started in parallel are separate: own files, processes and limits', async () => {
  const rt = env.runtime({ mainCommand: standInEnvd });
  const ids = [0, 1, 2, 3].map(() => `cl-t${rand()}`);
  // All settle before anything is judged: a failed create must not leave the others starting
  // after the suite's clean-up ran (this is the file's last test).
  const made = await Promise.allSettled(ids.map((id, i) => start(rt, id, { memoryMb: 128 + 32 * i })));
  const failed = made.flatMap((m) => (m.status === 'rejected' ? [m.reason as Error] : []));
  if (failed.length) {
    for (const m of made) if (m.status === 'fulfilled') await destroy(rt, m.value);
    throw new Error(`${failed.length} of 4 parallel creates failed: ${failed.map((e) => e.message).join('; ')}`);
  }
  const hs = made.map((m) => (m as PromiseFulfilledResult<RuntimeHandle>).value);
  await Promise.all(hs.map((h) => sh(h, `echo ${h.id} > /root/who && (sleep 30 >/dev/null 2>&1 </dev/null &)`)));
  for (const [i, h] of hs.entries()) {
    const r = await sh(
      h,
      'cat /root/who; ps -o comm | grep -c "^sleep$"; cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
    );
    assert.equal(r.stdout, `${h.id}\n1\n${(128 + 32 * i) * 1024 * 1024}\n`, `capsule ${h.id} saw: ${r.stdout}`);
  }
  await Promise.all(hs.map((h) => destroy(rt, h)));
});
