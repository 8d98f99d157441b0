// Starting and stopping the Firecracker VMM process. Each VMM runs in the capsule's network
// namespace (so it opens tap0 there) and in a mount namespace of its own in which the capsule's
// directory is bound at one fixed path (<dataDir>/vmm). Every path Firecracker sees, and records
// in its snapshots, is therefore the same for every capsule: a snapshot of one capsule loads in
// another (snapshot templates) without the jailer's chroot.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exists } from '../vm-boot.js';
import { CONSOLE_LOG, consoleTail, killVmmProcess, pidAlive } from '../vm-process.js';
import { FirecrackerClient } from './api-client.js';

export { CONSOLE_LOG, consoleTail, pidAlive };

const execFileP = promisify(execFile);

/** Inside the VMM's mount namespace: the capsule's directory is bound here. */
export const API_SOCKET = 'firecracker.sock';
export const UFFD_SOCKET = 'uffd.sock';
/** Longest unix socket path the kernel accepts (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/** Kills a Firecracker and waits until it is gone (its guest memory is freed with it). */
export const killVmm = (pid: number, capsuleId: string): Promise<void> => killVmmProcess(pid, 'Firecracker', capsuleId);

/** The `--id` Firecracker runs with: names the capsule in `ps` and lets cleanup find it. */
export const vmmId = (capsuleId: string) => `wrenn-${capsuleId}`;

/** "1.10.1" from `firecracker --version` ("Firecracker v1.10.1" on its first line). */
export function parseFirecrackerVersion(text: string): string {
  const m = /Firecracker v?(\d+\.\d+\.\d+)/i.exec(text);
  if (!m?.[1]) throw new Error(`cannot read a version from \`firecracker --version\`: ${text.slice(0, 200)}`);
  return m[1];
}

/**
 * The guest kernel is Debian's, built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: it finds
 * Firecracker's virtio-mmio devices only through ACPI (the DSDT), which Firecracker provides on
 * x86_64 since 1.8. The API Wrenn speaks (UFFD snapshot load, MMDS V2, track_dirty_pages) is 1.x's.
 */
export function checkSupportedVersion(version: string): void {
  const [major, minor] = version.split('.').map(Number) as [number, number];
  if (major !== 1 || minor < 8)
    throw new Error(
      `Firecracker ${version} is not supported: Wrenn needs 1.8 to 1.x (ACPI device discovery for the Debian guest kernel, the 1.x API)`,
    );
}

/** Runs `<binary> --version`; rejects with what to install when the binary is missing. */
export async function binaryVersion(binary: string): Promise<string> {
  const r = await execFileP(binary, ['--version'], { timeout: 10_000 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT')
      throw new Error(
        `the firecracker binary ${binary} was not found: install a Firecracker release and put it on PATH`,
      );
    throw new Error(`\`${binary} --version\` failed: ${e.message}`);
  });
  const version = parseFirecrackerVersion(r.stdout + r.stderr);
  checkSupportedVersion(version);
  return version;
}

export interface LaunchOptions {
  binary: string;
  capsuleId: string;
  /** The capsule's directory on the host (its disk, sockets, console log). */
  dir: string;
  /** The fixed path the capsule's directory is bound at inside the VMM's mount namespace. */
  vmmDir: string;
  /** Network namespace name (under /run/netns). */
  netns: string;
}

export interface Vmm {
  pid: number;
  client: FirecrackerClient;
}

/** Starts Firecracker detached (it outlives an agent restart) and waits until its API answers. */
export async function launchVmm(o: LaunchOptions): Promise<Vmm> {
  const apiOnHost = join(o.dir, API_SOCKET);
  for (const p of [apiOnHost, join(o.dir, UFFD_SOCKET), join(o.vmmDir, API_SOCKET)]) {
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH)
      throw new Error(`socket path ${p} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter data directory`);
  }
  await rm(apiOnHost, { force: true });
  const out = openSync(join(o.dir, CONSOLE_LOG), 'a');
  // sh only binds the capsule's directory and then becomes Firecracker (exec: same pid).
  const script = 'mount --bind "$1" "$2" && exec "$3" --api-sock "$2/firecracker.sock" --id "$4"';
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      o.netns,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      script,
      'wrenn-firecracker',
      o.dir,
      o.vmmDir,
      o.binary,
      vmmId(o.capsuleId),
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const pid = child.pid ?? 0;
  let exited: string | undefined;
  child.on('error', (e) => (exited = e.message));
  child.on('exit', (code, signal) => (exited = `exit ${code ?? signal}`));
  child.unref();
  const client = new FirecrackerClient(apiOnHost);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`Firecracker exited while starting (${exited}): ${await consoleTail(o.dir)}`);
    if (await exists(apiOnHost)) {
      try {
        await client.describe();
        return { pid, client };
      } catch {
        // the socket exists before the API serves on it
      }
    }
    if (Date.now() > deadline) {
      await killVmm(pid, o.capsuleId).catch(() => {});
      throw new Error(`Firecracker's API did not answer on ${apiOnHost} within 10 s: ${await consoleTail(o.dir)}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The command line of a process as its arguments ([] when it is gone). */
export async function processArgs(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return raw ? raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1) : [];
}

/** true when `pid` is the Firecracker of `capsuleId` started with this VMM directory. */
export async function isOurVmm(pid: number, capsuleId: string, vmmDir: string): Promise<boolean> {
  if (!pidAlive(pid)) return false;
  const args = await processArgs(pid);
  return args.includes(join(vmmDir, API_SOCKET)) && args.includes(vmmId(capsuleId));
}

/** Firecracker processes started with this VMM directory: capsule id -> pid. */
export async function listVmms(vmmDir: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const sock = join(vmmDir, API_SOCKET);
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const args = await processArgs(Number(name));
    const at = args.indexOf('--api-sock');
    const idAt = args.indexOf('--id');
    if (at < 0 || args[at + 1] !== sock || idAt < 0) continue;
    const id = args[idAt + 1] ?? '';
    if (id.startsWith('wrenn-')) found.set(id.slice('wrenn-'.length), Number(name));
  }
  return found;
}
