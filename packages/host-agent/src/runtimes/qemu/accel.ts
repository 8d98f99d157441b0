// Which accelerator QEMU can use here. /dev/kvm existing is not enough (a nested host may
// expose a /dev/kvm that cannot run a vCPU), so KVM is tried for real: a tiny machine with
// `-cpu host` must reach and stay in the running state; otherwise software emulation (TCG).
import { spawn } from 'node:child_process';
import { access, constants, readFile } from 'node:fs/promises';

export type Accel = 'kvm' | 'tcg';

export interface AccelChoice {
  accel: Accel;
  /** Why, in words for logs and test output. */
  reason: string;
}

let cached: Promise<AccelChoice> | undefined;

export function detectAccel(qemuBinary = 'qemu-system-x86_64'): Promise<AccelChoice> {
  cached ??= probe(qemuBinary);
  return cached;
}

async function probe(qemu: string): Promise<AccelChoice> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible: software emulation (TCG)' };
  }
  const flags = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const virt = /\b(vmx|svm)\b/.test(flags) ? 'the CPU reports vmx/svm' : 'the CPU reports no vmx/svm flags';
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
