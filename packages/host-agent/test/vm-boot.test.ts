// The boot steps both VM runtimes share (runtimes/vm-boot.ts, vm-snapshot-template.ts), on real
// files: the spec check per VMM, the kernel command line, the stale sweep (only this runtime's
// records of unknown capsules) and the snapshot template publish (all or nothing).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CapsuleSpec, RuntimeHandle } from '../src/runtimes/runtime.js';
import { VmBoot, type VmmFacts } from '../src/runtimes/vm-boot.js';

const facts = (over: Partial<VmmFacts> = {}): VmmFacts => ({
  runtime: 'qemu',
  maxIdLength: 63,
  maxVcpus: 64,
  kernelArgs: ['pci=off'],
  handleFile: 'vm.json',
  snapshotInfoFile: 'frozen.json',
  ...over,
});

const spec = (over: Partial<CapsuleSpec> = {}): CapsuleSpec => ({
  id: 'cl-vmboot1',
  template: 'minimal',
  vcpus: 2,
  memoryMb: 256,
  envs: {},
  internet: false,
  metadata: { WRENN_SANDBOX_ID: 'cl-vmboot1', WRENN_TEMPLATE_ID: 'minimal' },
  network: { netnsPath: '/run/netns/wrt-cl-vmboot1', capsuleIp: '10.1.2.3' },
  ...over,
});

test('vm boot: a spec is checked against the VMM it goes to; the kernel line has the shared and the VMM arguments', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'wrenn-vmboot-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  assert.throws(() => new VmBoot(undefined, facts()), /qemu runtime needs dataDir/);
  const fc = new VmBoot(
    { dataDir },
    facts({ runtime: 'firecracker', maxIdLength: 51, maxVcpus: 32, vcpusNote: '(x)' }),
  );
  const qemu = new VmBoot({ dataDir }, facts());
  assert.deepEqual(fc.check(spec()), { netns: 'wrt-cl-vmboot1', capsuleIp: '10.1.2.3' });
  assert.throws(() => fc.check(spec({ vcpus: 33 })), /vcpus must be 1-32 \(x\), got 33/);
  assert.doesNotThrow(() => qemu.check(spec({ vcpus: 33 })));
  const longId = `cl-${'a'.repeat(55)}`;
  assert.throws(() => fc.check(spec({ id: longId })), /invalid capsule id/);
  assert.doesNotThrow(() => qemu.check(spec({ id: longId })));
  assert.throws(() => qemu.check(spec({ id: 'Bad_Id' })), /invalid capsule id/);
  assert.throws(() => qemu.check(spec({ memoryMb: 64 })), /memoryMb must be an integer >= 128/);
  assert.throws(() => qemu.check(spec({ network: undefined })), /qemu runtime needs spec.network/);

  const line = qemu.kernelArgs(spec({ metadata: { WRENN_SANDBOX_ID: 'sb-x', WRENN_TEMPLATE_ID: 'minimal' } }), [
    'wrenn.node_flags=--jitless',
  ]);
  const args = line.split(' ');
  for (const a of [
    'console=ttyS0',
    'panic=1',
    'pci=off',
    'root=/dev/vda',
    'rw',
    'wrenn.id=sb-x',
    'wrenn.template=minimal',
  ])
    assert.ok(args.includes(a), `${a} in ${line}`);
  assert.equal(args.at(-1), 'wrenn.node_flags=--jitless', 'guest settings come last');
  assert.ok(
    args.some((a) => a.startsWith('ip=') && a.includes(':cl-vmboot1:eth0:')),
    line,
  );
});

test('vm boot: the stale sweep destroys only records of this runtime whose capsule is unknown', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'wrenn-vmboot-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const boot = new VmBoot({ dataDir }, facts());
  const record = async (id: string, runtime: string, recordId = id) => {
    const dir = boot.sandboxDir(id);
    await mkdir(dir, { recursive: true });
    await boot.saveHandle({ runtime, id: recordId, address: '', state: { dir } } as unknown as RuntimeHandle);
  };
  await record('cl-known', 'qemu');
  await record('cl-gone', 'qemu');
  await record('cl-other', 'firecracker');
  await record('cl-renamed', 'qemu', 'cl-elsewhere');
  await mkdir(boot.sandboxDir('cl-norecord'), { recursive: true });
  const destroyed: string[] = [];
  await boot.sweepStale(new Set(['cl-known']), async (h) => {
    destroyed.push(h.id);
  });
  assert.deepEqual(destroyed, ['cl-gone']);
  assert.equal(JSON.parse(await readFile(join(boot.sandboxDir('cl-known'), 'vm.json'), 'utf8')).id, 'cl-known');
});

test('vm boot: a snapshot template appears whole with its shape and manifest, or not at all', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'wrenn-vmboot-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const boot = new VmBoot({ dataDir }, facts({ runtime: 'firecracker' }));
  const handle = {
    runtime: 'firecracker',
    id: 'cl-src',
    address: '',
    state: { dir: boot.sandboxDir('cl-src'), template: 'minimal', vcpus: 2, memoryMb: 256 },
  } as unknown as RuntimeHandle;

  await assert.rejects(
    boot.snapshotTemplate('snap-bad', handle, async (tmp) => {
      await writeFile(join(tmp, 'rootfs.ext4'), 'half');
      throw new Error('the VMM refused');
    }),
    /the VMM refused/,
  );
  assert.deepEqual(await readdir(boot.store.imagesDir).catch(() => []), [], 'nothing left behind');

  await boot.snapshotTemplate('snap-ok', handle, async (tmp) => {
    await writeFile(join(tmp, 'rootfs.ext4'), Buffer.alloc(64 * 1024, 1));
    await mkdir(join(tmp, 'memory'));
    await writeFile(join(tmp, 'memory', 'mem.1'), Buffer.alloc(64 * 1024, 2));
    return { firecrackerVersion: '1.10.1' };
  });
  const dir = boot.store.templateDir('snap-ok');
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'frozen.json'), 'utf8')), {
    vcpus: 2,
    memoryMb: 256,
    parent: 'minimal',
    createdFrom: 'cl-src',
    firecrackerVersion: '1.10.1',
  });
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.kind, 'snapshot');
  assert.deepEqual(manifest.runtimes, ['firecracker']);
  assert.ok(manifest.size >= 128 * 1024, `size counts the files below the template, nested too (${manifest.size})`);
  const { frozen } = await boot.frozenTemplate<{ vcpus: number }>('snap-ok');
  assert.equal(frozen?.vcpus, 2);
  assert.equal((await boot.frozenTemplate('minimal')).frozen, undefined);
  await assert.rejects(
    boot.snapshotTemplate('snap-ok', handle, async () => undefined),
    /template "snap-ok" already exists/,
  );
});
