// The call sequences of the Firecracker runtime: configure + start a capsule, pause into a
// snapshot generation (Full the first time, Diff afterwards), and restore with UFFD.
import { DEFAULT_TX_RATE_LIMITER, type FirecrackerClient } from './api-client.js';

export interface MicroVmConfig {
  kernel: string; // vmlinux
  initrd?: string;
  bootArgs: string;
  rootfs: string;
  /** Volume images (paths the VMM sees), attached after the root disk in this order. */
  volumes?: string[];
  tapName: string; // tap0 inside the capsule's network namespace
  guestMac: string;
  vcpus: number;
  memoryMb: number;
  metadata: { WRENN_SANDBOX_ID: string; WRENN_TEMPLATE_ID: string } & Record<string, string>;
}

/** Configures a fresh Firecracker and boots it; dirty-page tracking on so later pauses can be Diffs. */
export async function configureAndStart(fc: FirecrackerClient, cfg: MicroVmConfig): Promise<string> {
  const version = await fc.version();
  await fc.putBootSource({
    kernel_image_path: cfg.kernel,
    boot_args: cfg.bootArgs,
    ...(cfg.initrd ? { initrd_path: cfg.initrd } : {}),
  });
  await fc.putDrive({ drive_id: 'rootfs', path_on_host: cfg.rootfs, is_root_device: true, is_read_only: false });
  // Firecracker orders its disks root first, then as they were added: the guest sees vdb, vdc, ...
  for (const [i, path] of (cfg.volumes ?? []).entries())
    await fc.putDrive({
      drive_id: `vol${i}`,
      path_on_host: path,
      is_root_device: false,
      is_read_only: false,
      cache_type: 'Writeback', // the guest's flushes reach the image
    });
  await fc.putNetworkInterface({
    iface_id: 'eth0',
    host_dev_name: cfg.tapName,
    guest_mac: cfg.guestMac,
    tx_rate_limiter: DEFAULT_TX_RATE_LIMITER,
  });
  await fc.putMachineConfig({ vcpu_count: cfg.vcpus, mem_size_mib: cfg.memoryMb, smt: false, track_dirty_pages: true });
  await fc.putMmdsConfig(['eth0']);
  await fc.putMmds({ ...cfg.metadata });
  await fc.start();
  return version;
}

/** Pauses the vCPUs and writes a snapshot: Full for the first generation, Diff (dirty pages only) after. */
export async function pauseToSnapshot(
  fc: FirecrackerClient,
  opts: { snapshotPath: string; memFilePath: string; firstGeneration: boolean },
): Promise<'Full' | 'Diff'> {
  const type = opts.firstGeneration ? 'Full' : 'Diff';
  await fc.pause();
  await fc.createSnapshot({ snapshotPath: opts.snapshotPath, memFilePath: opts.memFilePath, type });
  return type;
}

/** Loads a snapshot into a fresh Firecracker with memory from the UFFD handler, and runs it. */
export async function restoreWithUffd(
  fc: FirecrackerClient,
  opts: { snapshotPath: string; uffdSocket: string },
): Promise<void> {
  await fc.loadSnapshotWithUffd({
    snapshotPath: opts.snapshotPath,
    uffdSocket: opts.uffdSocket,
    resume: true,
    trackDirtyPages: true,
  });
}
