// The QEMU accelerator choice: KVM only where /dev/kvm runs a vCPU and the CPU reports vmx/svm
// (a nested /dev/kvm without them ran SeaBIOS but no guest kernel here), the WRENN_QEMU_ACCEL
// override, and the real probe on this machine agreeing with its own /proc/cpuinfo.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { cpuVirtualizes, detectAccel, forcedAccel } from '../src/runtimes/qemu/accel.js';

test('the CPU virtualizes only when its flags line names vmx or svm', () => {
  assert.equal(cpuVirtualizes('processor\t: 0\nflags\t\t: fpu vme de pse tsc vmx sse\n'), true);
  assert.equal(cpuVirtualizes('flags\t\t: fpu svm lm\n'), true);
  assert.equal(cpuVirtualizes('flags\t\t: fpu vme de pse tsc msr pae hypervisor lm\n'), false);
  // Not a flag: a word containing it, or another line.
  assert.equal(cpuVirtualizes('flags\t\t: fpu vmxnotreally\nmodel name\t: vmx svm\n'), false);
  assert.equal(cpuVirtualizes(''), false);
});

test('WRENN_QEMU_ACCEL forces kvm or tcg; auto probes; anything else is refused', async () => {
  assert.deepEqual(await detectAccel('qemu-system-x86_64', 'tcg'), { accel: 'tcg', reason: 'WRENN_QEMU_ACCEL=tcg' });
  assert.deepEqual(await detectAccel('qemu-system-x86_64', 'kvm'), { accel: 'kvm', reason: 'WRENN_QEMU_ACCEL=kvm' });
  assert.throws(() => forcedAccel('hvf'), /WRENN_QEMU_ACCEL must be kvm, tcg or auto/);
  const probed = await detectAccel('qemu-system-x86_64', 'auto');
  console.log(`# this machine: ${probed.accel} (${probed.reason})`);
  if (!cpuVirtualizes(readFileSync('/proc/cpuinfo', 'utf8'))) assert.equal(probed.accel, 'tcg', probed.reason);
});
