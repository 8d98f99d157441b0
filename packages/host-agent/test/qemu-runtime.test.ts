// The QEMU runtime for real: a `minimal` VM capsule boots from the Debian kernel, envd answers
// over the TAP in its network namespace, commands run, the capsule reads its id from the
// metadata service, and a process counting in memory survives pause (memory snapshot to disk,
// QEMU gone) and resume; after a small change a second pause writes a Diff generation much smaller
// than the first Full one, and the count continues after resume from the chain. On hosts without
// usable KVM everything runs in software emulation (TCG).

import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { QemuState } from '../src/runtimes/qemu/index.js';
import { generationFile, readHeader } from '../src/snapshot/index.js';
import { createEnvdClient, qemuEnv, qemuSkipReason, sh } from './qemu-helpers.js';

const skip = qemuSkipReason();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('qemu: a minimal VM capsule boots, runs echo, reads its id from metadata, keeps a counting process across pause/resume (Full, then a Diff after a small change) and into snapshot templates (from the running and the paused capsule)', {
  skip,
  timeout: 600_000,
}, async (t) => {
  const env = await qemuEnv();
  // One cleanup, in order: VMs and TAPs (cleanupStale), then networks and firewall chains, then files.
  t.after(() => env.close());
  const id = 'cl-qemutest1';
  const metadata = { WRENN_SANDBOX_ID: id, WRENN_TEMPLATE_ID: 'minimal' };
  const net = await env.net.create({ id, internet: false, metadata });

  await env.runtime.images('minimal'); // built once; not part of the boot figure
  let t0 = Date.now();
  const handle = await env.runtime.create({
    id,
    template: 'minimal',
    vcpus: 1,
    memoryMb: 512,
    envs: {},
    internet: false,
    metadata,
    network: { capsuleIp: net.capsuleIp, netnsPath: net.netnsPath },
  });
  const state = handle.state as QemuState;
  console.log(`# boot to envd ready: ${Date.now() - t0} ms (${state.accel})`);
  assert.equal(handle.address, net.capsuleIp);

  const client = createEnvdClient(handle.address);
  t.after(() => client.close());
  const echo = await sh(client, 'echo hello from $(uname -r) as $(id -u)');
  assert.equal(echo.code, 0);
  assert.match(echo.out, /^hello from 6\.\d+\.\d+-\S+-amd64 as 0\n$/, 'echo runs inside the Debian guest kernel');

  const meta = await sh(
    client,
    'wget -qO- http://169.254.169.254/WRENN_SANDBOX_ID; echo; cat /run/wrenn/metadata.json; hostname; cat /run/wrenn/metadata.source',
  );
  assert.equal(meta.code, 0);
  const [fromService, file, hostname, source] = meta.out.split('\n');
  assert.equal(fromService, id, 'the metadata service answers the capsule with its id');
  assert.deepEqual(JSON.parse(file ?? '{}'), metadata, 'wrenn-init read the metadata at boot');
  assert.equal(hostname, id);
  assert.equal(source, 'service', 'wrenn-init got it from the metadata service, not the kernel command line');

  // A counter that lives only in memory (a shell variable), published on a tmpfs.
  const started = await sh(
    client,
    "sh -c 'echo $$ > /dev/shm/pid; i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done' </dev/null >/dev/null 2>&1 & sleep 1; cat /dev/shm/pid",
  );
  const counterPid = Number(started.out.trim());
  assert.ok(counterPid > 1, `counter started (pid ${started.out}, stderr ${started.err})`);
  const before = Number((await sh(client, 'cat /dev/shm/count')).out);
  assert.ok(before > 0);

  const qemuPid = state.pid;
  t0 = Date.now();
  const paused = await env.runtime.pause(handle, 'memory-snapshot');
  console.log(
    `# pause (memory snapshot to disk): ${Date.now() - t0} ms, ${paused.snapshot?.kind} snapshot ${paused.snapshot?.bytes} bytes`,
  );
  assert.equal(paused.processesKept, true);
  assert.equal(paused.snapshot?.kind, 'full', 'the first memory snapshot is a Full generation');
  assert.ok(!pidAlive(qemuPid), 'the QEMU process is gone');
  assert.ok(state.memoryPath && !existsSync(state.memoryPath), 'the guest RAM file is gone (memory freed)');
  const chainDir = state.chainDir as string;
  const h1 = await readHeader(chainDir);
  assert.equal(h1.generations.length, 1);
  assert.equal(h1.size, 512 * 1024 ** 2, 'the header covers all guest RAM');
  const fullFile = generationFile(chainDir, h1.generations[0] as string);
  const diskBytes = (p: string) => statSync(p).blocks * 512;
  assert.equal(
    paused.snapshot?.bytes,
    diskBytes(fullFile) + diskBytes(state.statePath),
    'bytes = RAM + device state on disk',
  );
  assert.ok(
    diskBytes(state.statePath) < 4 * 1024 ** 2,
    `the device state is small (${diskBytes(state.statePath)} bytes)`,
  );
  assert.equal(await env.runtime.isAlive(handle), true, 'a saved capsule counts as alive (re-adoptable)');

  t0 = Date.now();
  await env.runtime.resume(handle);
  console.log(`# resume (incoming migration from the file): ${Date.now() - t0} ms`);
  assert.notEqual(state.pid, qemuPid);
  // A fresh connection: keep-alive sockets from before the pause may be closed by envd's idle
  // timer as soon as the guest's clock runs again (the manager's client reconnects the same way).
  client.close();
  const client1 = createEnvdClient(handle.address);
  t.after(() => client1.close());
  const after = await sh(client1, 'cat /dev/shm/pid; cat /dev/shm/count; sleep 1; cat /dev/shm/count');
  const [pidAfter, c1, c2] = after.out.trim().split('\n').map(Number);
  assert.equal(pidAfter, counterPid, 'the same process is still running');
  assert.ok((c1 ?? 0) >= before, `count continued from ${before} (got ${c1})`);
  assert.ok((c2 ?? 0) > (c1 ?? 0), `and keeps counting (${c1} -> ${c2})`);
  assert.ok(!existsSync(state.statePath), 'the device state file is removed after resume');
  assert.ok(existsSync(fullFile), 'the memory chain stays: the base of the next Diff');

  // A small change, then pause again: a Diff holding only the blocks that changed.
  const wrote = await sh(client1, 'echo "a small change" > /root/small.txt && sync && cat /root/small.txt');
  assert.equal(wrote.out, 'a small change\n');
  const countBefore2 = Number((await sh(client1, 'cat /dev/shm/count')).out);
  t0 = Date.now();
  const paused2 = await env.runtime.pause(handle, 'memory-snapshot');
  console.log(
    `# re-pause after a small change: ${Date.now() - t0} ms, ${paused2.snapshot?.kind} snapshot ${paused2.snapshot?.bytes} bytes ` +
      `(full was ${paused.snapshot?.bytes}; diff/full = ${((paused2.snapshot?.bytes ?? 0) / (paused.snapshot?.bytes ?? 1)).toFixed(3)})\n# ${paused2.keeps}`,
  );
  assert.equal(paused2.snapshot?.kind, 'diff', 'the second memory snapshot is a Diff generation');
  assert.ok(
    (paused2.snapshot?.bytes ?? Infinity) < (paused.snapshot?.bytes ?? 0),
    `the diff (${paused2.snapshot?.bytes} bytes) is smaller than the full snapshot (${paused.snapshot?.bytes})`,
  );
  assert.match(paused2.keeps, /comparing/, 'the pause says how the changed blocks were found');
  const hdr2 = await readHeader(chainDir);
  assert.equal(hdr2.generations.length, 2, 'Full + Diff in the chain');
  assert.equal(hdr2.generations[0], h1.generations[0]);
  const diffFile = generationFile(chainDir, hdr2.generations[1] as string);
  assert.ok(diskBytes(diffFile) < diskBytes(fullFile), 'the diff file is smaller on disk than the full one');
  assert.ok(!existsSync(state.memoryPath), 'the guest RAM file is gone again');
  // A snapshot template from the paused capsule: its chain (Full + Diff) flattened into one Full.
  await env.runtime.snapshot(handle, 'qemu-snap-saved');
  const savedTemplate = await readHeader(join(env.dataDir, 'images', 'qemu-snap-saved', 'vm-memory'));
  assert.equal(savedTemplate.generations.length, 1, 'the template holds one Full generation');

  await env.runtime.resume(handle);
  client1.close();
  const client3 = createEnvdClient(handle.address);
  t.after(() => client3.close());
  const after2 = await sh(
    client3,
    'cat /dev/shm/pid; cat /dev/shm/count; sleep 1; cat /dev/shm/count; cat /root/small.txt',
  );
  const [pid3, e1, e2, text] = after2.out.trim().split('\n');
  assert.equal(Number(pid3), counterPid, 'the same process runs after resuming from Full + Diff');
  assert.ok(
    Number(e1) >= countBefore2 && Number(e2) > Number(e1),
    `the count continues (${countBefore2} -> ${e1} -> ${e2})`,
  );
  assert.equal(text, 'a small change');

  // A snapshot template: disk + memory; a new capsule starts from it with the counter running.
  t0 = Date.now();
  await env.runtime.snapshot(handle, 'qemu-snap-test');
  console.log(`# snapshot template (memory + flattened disk): ${Date.now() - t0} ms`);
  const still = Number((await sh(client3, 'sleep 1; cat /dev/shm/count')).out);
  assert.ok(still > Number(e2), 'the source capsule keeps running after the snapshot');
  const id2 = 'cl-qemutest2';
  const metadata2 = { WRENN_SANDBOX_ID: id2, WRENN_TEMPLATE_ID: 'qemu-snap-test' };
  const net2 = await env.net.create({ id: id2, internet: false, metadata: metadata2 });
  t0 = Date.now();
  const h2 = await env.runtime.create({
    id: id2,
    template: 'qemu-snap-test',
    vcpus: 2, // ignored: a snapshot template fixes vCPUs and memory
    memoryMb: 1024,
    envs: {},
    internet: false,
    metadata: metadata2,
    network: { capsuleIp: net2.capsuleIp, netnsPath: net2.netnsPath },
  });
  console.log(`# start from the snapshot template to envd ready: ${Date.now() - t0} ms`);
  const s2 = h2.state as QemuState;
  assert.deepEqual([s2.vcpus, s2.memoryMb], [1, 512], "vCPUs and memory are the snapshot's");
  const client2 = createEnvdClient(h2.address);
  t.after(() => client2.close());
  const fromSnap = await sh(client2, 'cat /dev/shm/pid; cat /dev/shm/count; sleep 1; cat /dev/shm/count');
  const [pid2, d1, d2] = fromSnap.out.trim().split('\n').map(Number);
  assert.equal(pid2, counterPid, 'the counting process is already running in the new capsule');
  assert.ok((d1 ?? 0) >= Number(e2) && (d2 ?? 0) > (d1 ?? 0), `it counts on from the snapshot (${d1} -> ${d2})`);
  await env.runtime.destroy(h2);

  // A capsule from the template written while the source was paused: the state of the second pause.
  const id3 = 'cl-qemutest3';
  const metadata3 = { WRENN_SANDBOX_ID: id3, WRENN_TEMPLATE_ID: 'qemu-snap-saved' };
  const net3 = await env.net.create({ id: id3, internet: false, metadata: metadata3 });
  const h3 = await env.runtime.create({
    id: id3,
    template: 'qemu-snap-saved',
    vcpus: 1,
    memoryMb: 512,
    envs: {},
    internet: false,
    metadata: metadata3,
    network: { capsuleIp: net3.capsuleIp, netnsPath: net3.netnsPath },
  });
  const client4 = createEnvdClient(h3.address);
  t.after(() => client4.close());
  const fromSaved = await sh(
    client4,
    'cat /dev/shm/pid; cat /root/small.txt; cat /dev/shm/count; sleep 1; cat /dev/shm/count',
  );
  const [pid4, text4, f1, f2] = fromSaved.out.trim().split('\n');
  assert.equal(Number(pid4), counterPid, 'the counting process runs in a capsule from the paused-capsule template');
  assert.equal(text4, 'a small change', 'with the change made before the second pause');
  assert.ok(Number(f2) > Number(f1), `and counts on (${f1} -> ${f2})`);
  await env.runtime.destroy(h3);

  await env.runtime.destroy(handle);
  assert.ok(!pidAlive(state.pid));
  assert.ok(!existsSync(state.dir));
});
