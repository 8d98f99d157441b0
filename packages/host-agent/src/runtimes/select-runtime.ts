// Which runtimes this host offers and which one capsules get by default. Firecracker is the
// production runtime: where KVM is usable and a firecracker binary is installed, it is offered
// and becomes the default; everywhere else the configured default (namespace) stays.
import { constants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import type { RuntimeName } from './runtime.js';

export interface HostFacts {
  /** /dev/kvm opened read-write (what a VMM needs). */
  kvmUsable: boolean;
  /** Why KVM is or is not usable, for the log. */
  kvmReason: string;
  /** Path of the firecracker binary, when one was found. */
  firecrackerBinary?: string;
  /** qemu-system-x86_64 is installed. */
  qemuInstalled: boolean;
}

export interface RuntimePolicy {
  /** The default when Firecracker cannot run here (default 'namespace'). */
  configuredDefault?: RuntimeName;
  /** false turns the Firecracker runtime off even where it could run. */
  firecracker?: boolean;
  /** false turns the QEMU runtime off. */
  qemu?: boolean;
}

export interface RuntimeSelection {
  /** Runtimes to construct, the default among them. */
  offered: RuntimeName[];
  defaultRuntime: RuntimeName;
  /** One line per runtime: why it is or is not offered. */
  reasons: string[];
}

/** The decision, from facts gathered by probeHost (pure: tested without KVM). */
export function selectRuntimes(facts: HostFacts, policy: RuntimePolicy = {}): RuntimeSelection {
  const offered: RuntimeName[] = ['namespace'];
  const reasons = ['namespace: always offered (needs only Linux and root)'];
  if (policy.qemu === false) reasons.push('qemu: turned off by configuration');
  else if (facts.qemuInstalled) {
    offered.push('qemu');
    reasons.push(`qemu: offered (${facts.kvmUsable ? 'KVM' : 'software emulation'})`);
  } else reasons.push('qemu: not offered (qemu-system-x86_64 is not installed)');
  let fcOffered = false;
  if (policy.firecracker === false) reasons.push('firecracker: turned off by configuration');
  else if (!facts.kvmUsable) reasons.push(`firecracker: not offered (KVM is not usable: ${facts.kvmReason})`);
  else if (!facts.firecrackerBinary) reasons.push('firecracker: not offered (no firecracker binary on PATH)');
  else {
    offered.push('firecracker');
    fcOffered = true;
    reasons.push(`firecracker: offered and the default (${facts.firecrackerBinary}, KVM usable)`);
  }
  const configured = policy.configuredDefault ?? 'namespace';
  if (!fcOffered && !offered.includes(configured))
    throw new Error(`the configured default runtime "${configured}" cannot run on this host: ${reasons.join('; ')}`);
  return { offered, defaultRuntime: fcOffered ? 'firecracker' : configured, reasons };
}

/** Finds an executable by name on PATH (or checks an explicit path). */
export async function findBinary(
  name: string,
  path = process.env.PATH ?? '/usr/bin:/bin',
): Promise<string | undefined> {
  const candidates = isAbsolute(name)
    ? [name]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    if (
      await access(c, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return c;
  }
  return undefined;
}

/**
 * Whether KVM can run a VM here, and why not. Opening /dev/kvm is not enough: some hosts (nested
 * or sandboxed) expose a /dev/kvm whose vCPUs cannot run, and those CPUs lack the vmx/svm flags.
 */
export async function probeKvm(
  device = '/dev/kvm',
  cpuinfoPath = '/proc/cpuinfo',
): Promise<{ usable: boolean; reason: string }> {
  try {
    const fh = await open(device, 'r+');
    await fh.close();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { usable: false, reason: `${device} does not exist (no KVM in this kernel or VM)` };
    return { usable: false, reason: `${device} cannot be opened read-write: ${e.code ?? e.message}` };
  }
  const cpuinfo = await readFile(cpuinfoPath, 'utf8').catch(() => '');
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  const virt = flags.find((f) => f === 'vmx' || f === 'svm');
  if (!virt)
    return {
      usable: false,
      reason: `${device} opens but the CPU has no vmx/svm flag (hardware virtualization not passed through), so its vCPUs cannot run`,
    };
  return { usable: true, reason: `${device} opened read-write and the CPU has ${virt}` };
}

/** Gathers the facts selectRuntimes decides on. */
export async function probeHost(opts: { firecrackerBinary?: string } = {}): Promise<HostFacts> {
  const [kvm, fc, qemu] = await Promise.all([
    probeKvm(),
    findBinary(opts.firecrackerBinary ?? 'firecracker'),
    findBinary('qemu-system-x86_64'),
  ]);
  return {
    kvmUsable: kvm.usable,
    kvmReason: kvm.reason,
    ...(fc ? { firecrackerBinary: fc } : {}),
    qemuInstalled: qemu !== undefined,
  };
}
