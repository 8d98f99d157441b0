// The per-host runtime choice: Firecracker is offered, and becomes the default, only where KVM can
// run a VM and a firecracker binary is installed; otherwise the configured default stays. The
// decision is a pure function of the host's facts; the probes are run on real files.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findBinary, probeHost, probeKvm, selectRuntimes } from '../src/runtimes/select-runtime.js';

const KVM = { kvmUsable: true, kvmReason: '/dev/kvm opened read-write and the CPU has vmx', qemuInstalled: false };

test('select-runtime: firecracker offered and the default when KVM is usable and the binary exists', () => {
  const r = selectRuntimes({ ...KVM, firecrackerBinary: '/usr/local/bin/firecracker' });
  assert.deepEqual(r.offered, ['namespace', 'firecracker']);
  assert.equal(r.defaultRuntime, 'firecracker');
  assert.match(r.reasons.join('\n'), /firecracker: offered and the default \(\/usr\/local\/bin\/firecracker/);
});

test('select-runtime: without KVM or without the binary the configured default stays', () => {
  const noKvm = selectRuntimes({
    kvmUsable: false,
    kvmReason: '/dev/kvm does not exist',
    qemuInstalled: true,
    firecrackerBinary: '/x/firecracker',
  });
  assert.deepEqual(noKvm.offered, ['namespace', 'qemu']);
  assert.equal(noKvm.defaultRuntime, 'namespace');
  assert.match(noKvm.reasons.join('\n'), /firecracker: not offered \(KVM is not usable: \/dev\/kvm does not exist\)/);
  assert.match(noKvm.reasons.join('\n'), /qemu: offered \(software emulation\)/);

  const noBinary = selectRuntimes({ ...KVM, qemuInstalled: true }, { configuredDefault: 'qemu' });
  assert.deepEqual(noBinary.offered, ['namespace', 'qemu']);
  assert.equal(noBinary.defaultRuntime, 'qemu');
  assert.match(noBinary.reasons.join('\n'), /no firecracker binary on PATH/);

  const off = selectRuntimes({ ...KVM, firecrackerBinary: '/x/firecracker' }, { firecracker: false });
  assert.deepEqual(off.offered, ['namespace']);
  assert.equal(off.defaultRuntime, 'namespace');
});

test('select-runtime: a configured default this host cannot run is an error that says why', () => {
  assert.throws(
    () => selectRuntimes({ kvmUsable: false, kvmReason: 'none', qemuInstalled: false }, { configuredDefault: 'qemu' }),
    /configured default runtime "qemu" cannot run on this host: .*qemu-system-x86_64 is not installed/,
  );
});

test('select-runtime: probes on real files (a /dev/kvm that opens but whose CPU lacks vmx/svm is not usable)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wfc-select-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dev = join(dir, 'kvm');
  await writeFile(dev, '');
  const cpuinfo = join(dir, 'cpuinfo');
  await writeFile(cpuinfo, 'processor\t: 0\nflags\t\t: fpu vme hypervisor lm\n');
  const noVirt = await probeKvm(dev, cpuinfo);
  assert.equal(noVirt.usable, false);
  assert.match(noVirt.reason, /no vmx\/svm flag/);
  await writeFile(cpuinfo, 'processor\t: 0\nflags\t\t: fpu vme vmx lm\n');
  assert.deepEqual(await probeKvm(dev, cpuinfo), {
    usable: true,
    reason: `${dev} opened read-write and the CPU has vmx`,
  });
  assert.match((await probeKvm(join(dir, 'missing'), cpuinfo)).reason, /does not exist/);

  const bin = join(dir, 'bin');
  await writeFile(join(dir, 'firecracker'), '');
  assert.equal(await findBinary('firecracker', dir), undefined, 'a file that is not executable is not a binary');
  await chmod(join(dir, 'firecracker'), 0o755);
  assert.equal(await findBinary('firecracker', `${bin}:${dir}`), join(dir, 'firecracker'));

  // This host, as the agent sees it.
  const facts = await probeHost();
  const choice = selectRuntimes(facts);
  t.diagnostic(
    `this host: KVM ${facts.kvmUsable ? 'usable' : 'not usable'} (${facts.kvmReason}); runtimes ${choice.offered.join(', ')}, default ${choice.defaultRuntime}`,
  );
  if (!facts.kvmUsable || !facts.firecrackerBinary) assert.equal(choice.defaultRuntime, 'namespace');
});
