// What this host's kernel and file system offer for copy-on-write VM disks: device-mapper
// (a snapshot device per capsule) or a file system that can reflink (copies share blocks).
import { randomBytes } from 'node:crypto';
import { access, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from './tool.js';

export const DM_CONTROL = '/dev/mapper/control';

export interface DeviceMapperSupport {
  usable: boolean;
  /** The kernel driver's version when usable. */
  driverVersion?: string;
  /** Why it is (not) usable, in words for logs and test output. */
  reason: string;
}

/** "4.48.0" from `dmsetup version` ("Driver version:   4.48.0"); undefined when the driver did not answer. */
export function parseDriverVersion(text: string): string | undefined {
  return /Driver version:\s+(\d+\.\d+\.\d+)/.exec(text)?.[1];
}

/**
 * device-mapper is usable when /dev/mapper/control exists and the kernel driver answers
 * `dmsetup version` (the node can exist while the driver is absent: open fails with ENODEV).
 */
export async function detectDeviceMapper(): Promise<DeviceMapperSupport> {
  const control = await access(DM_CONTROL).then(
    () => true,
    () => false,
  );
  if (!control)
    return {
      usable: false,
      reason: `no device-mapper: ${DM_CONTROL} does not exist (kernel without CONFIG_BLK_DEV_DM, or the dm-mod module not loaded)`,
    };
  const r = await runTool('dmsetup', ['version']).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
  const driverVersion = parseDriverVersion(r.stdout);
  if (r.code !== 0 || !driverVersion) {
    const said = (r.stderr.trim() || r.stdout.trim()).split('\n')[0] ?? '';
    return {
      usable: false,
      reason: `no device-mapper: the kernel driver does not answer \`dmsetup version\` (${said})`,
    };
  }
  return { usable: true, driverVersion, reason: `device-mapper driver ${driverVersion}` };
}

/** true when `cp --reflink=always` works in `dir` (btrfs, XFS with reflink, ...), tried on a small probe file. */
export async function detectReflink(dir: string): Promise<boolean> {
  const tag = randomBytes(4).toString('hex');
  const a = join(dir, `.reflink-probe-${tag}`);
  const b = `${a}.copy`;
  try {
    await writeFile(a, randomBytes(4096));
    const r = await runTool('cp', ['--reflink=always', '--', a, b]);
    return r.code === 0;
  } finally {
    await Promise.all([rm(a, { force: true }), rm(b, { force: true })]);
  }
}
