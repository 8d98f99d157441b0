// Which accelerator QEMU can use here. /dev/kvm existing is not enough (a nested host may
// expose a /dev/kvm that cannot run a vCPU), so KVM is tried for real: a tiny machine with
// `-cpu host` must reach and stay in the running state; otherwise software emulation (TCG).
// Nor is a running vCPU: inside a Firecracker VM whose CPU reports no vmx/svm, /dev/kvm ran
// SeaBIOS (real mode) while a Linux guest kernel printed nothing in 15 s (TCG boots it), so KVM
// also needs the CPU to report vmx or svm. WRENN_QEMU_ACCEL=kvm|tcg overrides the choice.
import { spawn } from 'node:child_process';
import { access, constants, readFile } from 'node:fs/promises';

export type Accel = 'kvm' | 'tcg';

export interface AccelChoice {
  accel: Accel;
  /** Why, in words for logs and test output. */
  reason: string;
}

let cached: Promise<AccelChoice> | undefined;

export function detectAccel(
  qemuBinary = 'qemu-system-x86_64',
  override = process.env.WRENN_QEMU_ACCEL,
): Promise<AccelChoice> {
  if (override !== undefined && override !== '' && override !== 'auto') return Promise.resolve(forcedAccel(override));
  cached ??= probe(qemuBinary);
  return cached;
}

/** WRENN_QEMU_ACCEL's value as a choice; anything but kvm, tcg or auto is refused. */
export function forcedAccel(value: string): AccelChoice {
  if (value === 'kvm' || value === 'tcg') return { accel: value, reason: `WRENN_QEMU_ACCEL=${value}` };
  throw new Error(`WRENN_QEMU_ACCEL must be kvm, tcg or auto, not ${JSON.stringify(value.slice(0, 40))}`);
}

/** Whether /proc/cpuinfo's flags say the CPU virtualizes (Intel VT-x or AMD-V). */
export function cpuVirtualizes(cpuinfo: string): boolean {
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

async function probe(qemu: string): Promise<AccelChoice> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible: software emulation (TCG)' };
  }
  const flags = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  if (!cpuVirtualizes(flags))
    return {
      accel: 'tcg',
      reason:
        '/dev/kvm exists but the CPU reports no vmx/svm flags (a nested host whose KVM does not run guest kernels): software emulation (TCG); WRENN_QEMU_ACCEL=kvm to try KVM anyway',
    };
  const virt = 'the CPU reports vmx/svm';
  const result = await new Promise<{ running: boolean; detail: string }>((resolve) => {
    const child = spawn(
      qemu,
      [
        '-accel',
        'kvm',
        '-cpu',
        'host',
        '-machine',
        'pc',
        '-m',
        '64',
        '-nodefaults',
        '-display',
        'none',
        '-qmp',
        'stdio',
      ],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err += b));
    child.stdin.on('error', () => {});
    const finish = (running: boolean, detail: string) => {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      resolve({ running, detail });
    };
    child.on('error', (e) => finish(false, `cannot run ${qemu}: ${e.message} (install qemu-system-x86)`));
    child.on('exit', () => finish(/"running": true/.test(out), err.trim().split('\n')[0] ?? 'exited'));
    child.stdin.write('{"execute":"qmp_capabilities"}\n');
    // A vCPU that cannot run makes QEMU abort at once; one that runs keeps it alive.
    const timer = setTimeout(() => {
      child.stdin.write('{"execute":"query-status"}\n{"execute":"quit"}\n');
    }, 700);
  });
  return result.running
    ? { accel: 'kvm', reason: `KVM runs a vCPU (${virt})` }
    : {
        accel: 'tcg',
        reason: `/dev/kvm exists but cannot run a vCPU (${virt}; QEMU said: ${result.detail}): software emulation (TCG)`,
      };
}
