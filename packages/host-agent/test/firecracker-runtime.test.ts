// The Firecracker runtime, run for real up to the VMM: real guest images (Debian vmlinux,
// initramfs, minimal rootfs.ext4), a real capsule network namespace with tap0, the VMM process
// launched in its own mount namespace inside the capsule's network namespace, real memory
// generations with their header, and the real UFFD handler serving real page faults. This host
// has no usable KVM, so Firecracker itself cannot run: its place is taken by a stand-in
// (test/fixtures/firecracker-standin.ts) that serves Firecracker's API on --api-sock, rejects any
// request outside the API schema or the VMM's state rules, writes Full/Diff memory files like
// Firecracker, and on snapshot load hands a userfaultfd to our handler exactly as Firecracker does.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FailedPreconditionError } from '@wrenn/protocol';
import { run } from '../src/network/exec.js';
import { NetworkManager } from '../src/network/index.js';
import { HOST_ID_BASE } from '../src/rootfs/id-map.js';
import {
  DEFAULT_TX_RATE_LIMITER,
  FirecrackerRuntime,
  type FirecrackerState,
} from '../src/runtimes/firecracker/index.js';
import { checkSupportedVersion, listVmms, parseFirecrackerVersion } from '../src/runtimes/firecracker/vmm-process.js';
import { probeKvm } from '../src/runtimes/select-runtime.js';
import { generationFiles, readHeader } from '../src/snapshot/index.js';
import { VolumeStore } from '../src/volumes/index.js';
import { freePort } from './network-helpers.js';

const STANDIN = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/firecracker-standin.js');
const NAMES = { netnsPrefix: 'wfct-', ifPrefix: 'wf', chainPrefix: 'WFCT' };
const POOL = '10.226.0.0/24';
const DIR_PREFIX = 'wfc-test-';

interface LogLine {
  pid: number;
  event?: string;
  method?: string;
  path?: string;
  body?: Record<string, unknown>;
  status?: number;
  fault?: string;
  type?: string;
  sha256?: string;
  pagesWritten?: number;
  mntns?: string;
  netns?: string;
}

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, TAP, mount namespaces)' : false;

async function readLog(file: string): Promise<LogLine[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

/** The state-changing API calls in order (GETs are the runtime's readiness and version checks). */
const calls = (lines: LogLine[]) =>
  lines.filter((l) => l.method && l.method !== 'GET').map((l) => `${l.method} ${l.path}`);

/** Guest memory rebuilt from the header and generation files, as the UFFD handler serves it. */
async function memoryFromChain(dir: string): Promise<Buffer> {
  const h = await readHeader(dir);
  const files = await Promise.all(generationFiles(dir, h).map((f) => open(f, 'r')));
  const out = Buffer.alloc(h.size);
  try {
    for (let b = 0; b < h.blocks.length; b++) {
      const g = h.blocks[b] as number;
      if (g >= 0) await files[g]?.read(out, b * h.blockSize, h.blockSize, b * h.blockSize);
    }
  } finally {
    await Promise.all(files.map((f) => f.close()));
  }
  return out;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('firecracker version: read from `firecracker --version`; 1.8+ (ACPI device discovery for the Debian kernel) required', () => {
  assert.equal(
    parseFirecrackerVersion('Firecracker v1.10.1\n\nSupported snapshot data format versions: v5.0.0'),
    '1.10.1',
  );
  assert.throws(() => parseFirecrackerVersion('something else'), /cannot read a version/);
  checkSupportedVersion('1.8.0');
  checkSupportedVersion('1.12.1');
  assert.throws(() => checkSupportedVersion('1.7.0'), /1\.7\.0 is not supported: Wrenn needs 1\.8 to 1\.x/);
  assert.throws(() => checkSupportedVersion('2.0.0'), /not supported/);
});

test('firecracker runtime against a Firecracker stand-in (Firecracker itself not run: no usable KVM here): create, pause Full, resume with UFFD, pause Diff, resume from the diff chain, snapshot template, a volume disk, cleanup', {
  skip,
  timeout: 600_000,
}, async (t) => {
  const kvm = await probeKvm();
  t.diagnostic(
    `Firecracker itself was NOT run: ${kvm.usable ? 'KVM looks usable, but no firecracker binary is installed' : `this host has no usable KVM (${kvm.reason})`}. A stand-in serves its API; everything else is real.`,
  );
  // Leftovers of an earlier, killed run go first.
  for (const old of await readdir(tmpdir())) {
    if (!old.startsWith(DIR_PREFIX)) continue;
    await new FirecrackerRuntime({ dataDir: join(tmpdir(), old) }).cleanupStale(new Set()).catch(() => {});
    await rm(join(tmpdir(), old), { recursive: true, force: true });
  }
  const dataDir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  const logFile = join(dataDir, 'standin.log');
  const binary = join(dataDir, 'bin/firecracker');
  await mkdir(dirname(binary));
  await writeFile(binary, `#!/bin/sh\nexec '${process.execPath}' '${STANDIN}' "$@"\n`);
  await chmod(binary, 0o755);
  process.env.WFC_STANDIN_LOG = logFile;
  const net = new NetworkManager({ dataDir, pool: POOL, names: NAMES, metadataPort: await freePort() });
  await net.removeAll();
  await net.init();
  const runtime = new FirecrackerRuntime({
    dataDir,
    firecrackerBinary: binary,
    onProgress: (m) => t.diagnostic(m),
  });
  t.after(async () => {
    await runtime.cleanupStale(new Set()).catch((e) => console.error('firecracker cleanup:', e));
    await net.removeAll().catch((e) => console.error('network cleanup:', e));
    await rm(dataDir, { recursive: true, force: true });
    delete process.env.WFC_STANDIN_LOG;
  });

  assert.equal(await runtime.version(), '1.10.1', 'version read from `firecracker --version`');
  await runtime.images('minimal'); // the real kernel (vmlinux) and rootfs.ext4, built once

  // --- create ---
  const id = 'cl-wfctest1';
  const metadata = { WRENN_SANDBOX_ID: id, WRENN_TEMPLATE_ID: 'minimal' };
  const n1 = await net.create({ id, internet: false, metadata });
  const handle = await runtime.create({
    id,
    template: 'minimal',
    vcpus: 1,
    memoryMb: 128,
    envs: {},
    internet: false,
    metadata,
    network: { capsuleIp: n1.capsuleIp, netnsPath: n1.netnsPath },
  });
  const s = handle.state as FirecrackerState;
  assert.equal(handle.address, n1.capsuleIp);
  assert.equal(handle.runtime, 'firecracker');
  assert.ok(await runtime.isAlive(handle));
  const pid1 = s.pid;
  let log = await readLog(logFile);
  assert.deepEqual(
    log.filter((l) => l.status !== undefined && l.status >= 300),
    [],
    'no request was rejected by the API schema or the VMM state rules',
  );
  const start1 = log.find((l) => l.event === 'start' && l.pid === pid1);
  assert.ok(start1, 'the VMM pid the runtime keeps is the stand-in itself');
  assert.notEqual(start1.mntns, await readlink('/proc/self/ns/mnt'), 'the VMM runs in a mount namespace of its own');
  const nsIno = (await stat(n1.netnsPath)).ino;
  assert.equal(start1.netns, `net:[${nsIno}]`, "the VMM runs in the capsule's network namespace");
  assert.deepEqual(calls(log.filter((l) => l.pid === pid1)), [
    'PUT /boot-source',
    'PUT /drives/rootfs',
    'PUT /network-interfaces/eth0',
    'PUT /machine-config',
    'PUT /mmds/config',
    'PUT /mmds',
    'PUT /actions',
  ]);
  const body = (path: string, pid = pid1) => log.find((l) => l.pid === pid && l.path === path)?.body ?? {};
  assert.match(String(body('/boot-source').kernel_image_path), /\/kernels\/[^/]+\/vmlinux$/);
  assert.match(
    String(body('/boot-source').boot_args),
    /ip=169\.254\.0\.21::169\.254\.0\.22:255\.255\.255\.252:cl-wfctest1:eth0:off/,
  );
  assert.equal(body('/drives/rootfs').path_on_host, join(dataDir, 'vmm/rootfs.ext4'), 'the disk at the fixed VMM path');
  assert.deepEqual(body('/network-interfaces/eth0').tx_rate_limiter, DEFAULT_TX_RATE_LIMITER);
  assert.equal(body('/network-interfaces/eth0').host_dev_name, 'tap0');
  assert.deepEqual(body('/machine-config'), { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: true });
  assert.equal(body('/mmds/config').version, 'V2');
  assert.deepEqual(body('/mmds'), metadata);
  const tap = await run('ip', ['-n', n1.netnsName, '-d', 'link', 'show', 'tap0']);
  assert.match(tap.stdout, /qlen 5000/, 'tap0 in the capsule namespace with txqueuelen 5000');
  const disk = await stat(join(s.dir, 'rootfs.ext4'));
  assert.ok(disk.blocks * 512 < disk.size, 'the capsule disk is a sparse copy of the template image');
  const st = await runtime.stats(handle);
  assert.ok(st.memoryBytes > 0 && st.memoryLimitBytes === 128 * 1024 ** 2);

  // --- pause 1: Full ---
  const p1 = await runtime.pause(handle, 'memory-snapshot');
  assert.equal(p1.snapshot?.kind, 'full');
  assert.ok(p1.processesKept);
  assert.equal(s.phase, 'saved');
  assert.equal(s.pid, 0);
  assert.ok(!(await listVmms(runtime.vmmDir)).has(id), 'the VMM is gone (its memory freed)');
  log = await readLog(logFile);
  assert.deepEqual(calls(log.filter((l) => l.pid === pid1)).slice(-2), ['PATCH /vm', 'PUT /snapshot/create']);
  const snap1 = log.filter((l) => l.event === 'snapshot').at(-1);
  assert.equal(snap1?.type, 'Full');
  assert.equal(sha(await memoryFromChain(s.snapDir)), snap1?.sha256, 'the header + generation 0 hold the memory');

  // --- resume 1: UFFD ---
  await runtime.resume(handle);
  const pid2 = s.pid;
  assert.notEqual(pid2, pid1);
  log = await readLog(logFile);
  assert.deepEqual(calls(log.filter((l) => l.pid === pid2)), ['PUT /snapshot/load', 'PUT /mmds']);
  assert.deepEqual(body('/snapshot/load', pid2), {
    snapshot_path: join(dataDir, 'vmm/vmstate'),
    mem_backend: { backend_type: 'Uffd', backend_path: join(dataDir, 'vmm/uffd.sock') },
    track_dirty_pages: true,
    resume_vm: true,
  });
  const loaded1 = log.find((l) => l.event === 'loaded' && l.pid === pid2);
  assert.equal(loaded1?.sha256, snap1?.sha256, 'every page served through userfaultfd equals the snapshot');

  // --- pause 2: Diff ---
  const p2 = await runtime.pause(handle, 'memory-snapshot');
  assert.equal(p2.snapshot?.kind, 'diff');
  assert.ok(
    p2.snapshot && p1.snapshot && p2.snapshot.bytes < p1.snapshot.bytes / 4,
    `diff ${p2.snapshot?.bytes} B vs full ${p1.snapshot?.bytes} B`,
  );
  log = await readLog(logFile);
  const snap2 = log.filter((l) => l.event === 'snapshot').at(-1);
  assert.equal(snap2?.type, 'Diff');
  assert.deepEqual(calls(log.filter((l) => l.pid === pid2)).slice(-2), ['PATCH /vm', 'PUT /snapshot/create']);
  const h2 = await readHeader(s.snapDir);
  assert.equal(h2.generations.length, 2, 'the diff became a second generation');
  assert.equal(
    sha(await memoryFromChain(s.snapDir)),
    snap2?.sha256,
    'full + diff through the header = the memory at pause 2',
  );
  t.diagnostic(
    `full snapshot ${p1.snapshot?.bytes} B on disk, diff ${p2.snapshot?.bytes} B (${snap2?.pagesWritten} dirty pages)`,
  );

  // --- resume 2: pages from the diff chain ---
  await runtime.resume(handle);
  const pid3 = s.pid;
  log = await readLog(logFile);
  assert.equal(log.find((l) => l.event === 'loaded' && l.pid === pid3)?.sha256, snap2?.sha256, 'UFFD served the chain');
  assert.equal(
    await new FirecrackerRuntime({ dataDir, firecrackerBinary: binary }).isAlive(handle),
    false,
    'another agent process cannot serve this VM its memory: it does not re-adopt it',
  );

  // --- snapshot template from the running capsule, and a capsule started from it ---
  await runtime.snapshot(handle, 'wfc-snap');
  log = await readLog(logFile);
  const snapT = log.filter((l) => l.event === 'snapshot').at(-1);
  assert.equal(snapT?.type, 'Full');
  assert.deepEqual(calls(log.filter((l) => l.pid === pid3)).slice(-3), [
    'PATCH /vm',
    'PUT /snapshot/create',
    'PATCH /vm',
  ]);
  assert.ok(await runtime.isAlive(handle), 'the source keeps running');
  const manifest = JSON.parse(await readFile(join(dataDir, 'images/wfc-snap/manifest.json'), 'utf8'));
  assert.deepEqual(manifest.runtimes, ['firecracker']);
  const id2 = 'cl-wfctest2';
  const meta2 = { WRENN_SANDBOX_ID: id2, WRENN_TEMPLATE_ID: 'wfc-snap' };
  const n2 = await net.create({ id: id2, internet: false, metadata: meta2 });
  const h2nd = await runtime.create({
    id: id2,
    template: 'wfc-snap',
    vcpus: 2,
    memoryMb: 256,
    envs: {},
    internet: false,
    metadata: meta2,
    network: { capsuleIp: n2.capsuleIp, netnsPath: n2.netnsPath },
  });
  const s2 = h2nd.state as FirecrackerState;
  assert.equal(s2.vcpus, 1, 'vcpus locked to the snapshot');
  assert.equal(s2.memoryMb, 128, 'memory locked to the snapshot');
  log = await readLog(logFile);
  assert.equal(
    log.find((l) => l.event === 'loaded' && l.pid === s2.pid)?.sha256,
    snapT?.sha256,
    'started from the frozen memory',
  );
  assert.deepEqual(body('/mmds', s2.pid), meta2, 'the new capsule gets its own metadata');

  // Freeze (vCPUs paused in place), then a memory snapshot of the frozen VM. After a template
  // snapshot Firecracker's dirty log restarted, so this pause is Full.
  const frozen = await runtime.pause(handle, 'freeze');
  assert.equal(frozen.snapshot, undefined);
  assert.equal(s.phase, 'frozen');
  const p3 = await runtime.pause(handle, 'memory-snapshot');
  assert.equal(p3.snapshot?.kind, 'full');
  log = await readLog(logFile);
  assert.deepEqual(
    log
      .filter((l) => l.pid === pid3 && l.method && l.method !== 'GET')
      .slice(-4)
      .map((l) => `${l.method} ${l.path} ${l.body?.state ?? l.body?.snapshot_type}`),
    ['PUT /snapshot/create Full', 'PATCH /vm Resumed', 'PATCH /vm Paused', 'PUT /snapshot/create Full'],
  );

  // --- a volume: its ext4 image attached as a second disk, owners shifted for the guest and back ---
  const volumes = new VolumeStore(join(dataDir, 'volumes'));
  await volumes.create('fcvol', 16);
  const volData = await volumes.mountedData('fcvol');
  await writeFile(join(volData, 'user.txt'), 'from a namespace capsule\n');
  await chown(join(volData, 'user.txt'), HOST_ID_BASE + 1000, HOST_ID_BASE + 1000);
  const id3 = 'cl-wfctest3';
  const image = await volumes.attachToVm('fcvol', id3);
  assert.equal(await volumes.vmHolder('fcvol'), id3);
  assert.equal(existsSync(join(volData, 'user.txt')), false, 'the host no longer mounts the image the VM holds');
  await assert.rejects(volumes.attachToVm('fcvol', 'cl-other'), FailedPreconditionError, 'a second VM is refused');
  await assert.rejects(volumes.mountedData('fcvol'), FailedPreconditionError, 'so is a namespace capsule');
  const meta3 = { WRENN_SANDBOX_ID: id3, WRENN_TEMPLATE_ID: 'minimal' };
  const n3 = await net.create({ id: id3, internet: false, metadata: meta3 });
  const h3 = await runtime.create({
    id: id3,
    template: 'minimal',
    vcpus: 1,
    memoryMb: 128,
    envs: {},
    internet: false,
    metadata: meta3,
    network: { capsuleIp: n3.capsuleIp, netnsPath: n3.netnsPath },
    volumes: [{ source: image, path: '/data' }],
  });
  const s3 = h3.state as FirecrackerState;
  log = await readLog(logFile);
  assert.deepEqual(
    log.filter((l) => l.pid === s3.pid && l.status !== undefined && l.status >= 300),
    [],
  );
  assert.deepEqual(calls(log.filter((l) => l.pid === s3.pid)).slice(0, 3), [
    'PUT /boot-source',
    'PUT /drives/rootfs',
    'PUT /drives/vol0',
  ]);
  assert.deepEqual(body('/drives/vol0', s3.pid), {
    drive_id: 'vol0',
    path_on_host: join(dataDir, 'vmm/volume0.img'),
    is_root_device: false,
    is_read_only: false,
    cache_type: 'Writeback',
  });
  assert.equal(await readlink(join(s3.dir, 'volume0.img')), image, "the VMM's fixed path links to the image");
  assert.match(String(body('/boot-source', s3.pid).boot_args), / wrenn\.volume=vdb:\/data( |$)/);
  t.diagnostic('a volume on Firecracker: configured and accepted by the API schema; not mounted by a guest (no KVM)');
  await runtime.destroy(h3);
  await net.destroy(id3);
  await volumes.releaseFromVm('fcvol', id3);
  const back = await volumes.mountedData('fcvol'); // e2fsck, mounted, owners shifted back
  assert.equal((await stat(join(back, 'user.txt'))).uid, HOST_ID_BASE + 1000, 'owners back in the canonical range');
  assert.equal(await readFile(join(back, 'user.txt'), 'utf8'), 'from a namespace capsule\n');
  await volumes.delete('fcvol');

  // --- cleanup: destroy one, cleanupStale (an agent restart) the other ---
  await runtime.destroy(handle);
  await new FirecrackerRuntime({ dataDir, firecrackerBinary: binary }).cleanupStale(new Set());
  assert.equal((await listVmms(runtime.vmmDir)).size, 0, 'no VMM left');
  // The first runtime's UFFD handler for the capsule another instance removed stops by itself.
  for (let i = 0; i < 50 && runtime.servingMemory().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(runtime.servingMemory(), [], 'no UFFD handler left once its VMM is gone');
  for (const l of (await readLog(logFile)).filter((x) => x.event === 'start')) {
    assert.throws(() => process.kill(l.pid, 0), `stand-in pid ${l.pid} is gone`);
  }
  assert.deepEqual(await readdir(join(dataDir, 'sandboxes')), [], 'no capsule directory (disk, sockets) left');
  assert.deepEqual(await readdir(join(dataDir, 'snapshots')), [], 'no snapshot directory left');
  const disks = await readdir(join(dataDir, 'disks')).catch(() => [] as string[]);
  assert.deepEqual(
    disks.filter((d) => d !== 'bases.json'),
    [],
    'no capsule root disk left',
  );
  for (const n of [n1, n2]) {
    assert.notEqual(
      (await run('ip', ['-n', n.netnsName, 'link', 'show', 'tap0'])).code,
      0,
      `tap0 removed from ${n.netnsName}`,
    );
  }
  await net.destroy(id);
  await net.destroy(id2);
});
