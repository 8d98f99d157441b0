// Helpers for the QEMU runtime tests: an isolated capsule network (own names, pool, metadata
// port), commands through envd, and what cannot run here said plainly in the output.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEnvdClient, type EnvdClient } from '../src/envd-client/index.js';
import { NetworkManager, startMetadataServer, stopMetadataServer } from '../src/network/index.js';
import { createQemuRuntime, type QemuRuntime } from '../src/runtimes/qemu/index.js';

export const QEMU_TEST_NAMES = { netnsPrefix: 'wrqt-', ifPrefix: 'wq', chainPrefix: 'WRQT' };
export const QEMU_TEST_POOL = '10.224.0.0/24';
const DIR_PREFIX = 'wrenn-qemu-test-';

export function qemuSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, TAP, iptables)';
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0)
    return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 qemu-utils)';
  return false;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface QemuEnv {
  dataDir: string;
  net: NetworkManager;
  runtime: QemuRuntime;
  close(): Promise<void>;
}

/** A data dir, a network manager with test-only names, its metadata server and a QEMU runtime. */
export async function qemuEnv(): Promise<QemuEnv> {
  // VMs of an earlier, killed run (QEMU daemonizes) go first, with their data dirs.
  for (const old of await readdir(tmpdir())) {
    if (!old.startsWith(DIR_PREFIX)) continue;
    await createQemuRuntime({ dataDir: join(tmpdir(), old) })
      .cleanupStale(new Set())
      .catch(() => {});
    await rm(join(tmpdir(), old), { recursive: true, force: true });
  }
  const dataDir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  const net = new NetworkManager({
    dataDir,
    pool: QEMU_TEST_POOL,
    names: QEMU_TEST_NAMES,
    metadataPort: await freePort(),
  });
  await net.removeAll(); // leftovers of an earlier, killed run
  await net.init();
  await startMetadataServer({ manager: net });
  const runtime = createQemuRuntime({ dataDir, onProgress: (m) => console.log(`# ${m}`) });
  const choice = await runtime.accelerator();
  if (choice.accel === 'tcg')
    console.log(`# NOTE: QEMU runs with TCG (software emulation) because KVM is unusable here: ${choice.reason}`);
  else console.log(`# QEMU runs with KVM: ${choice.reason}`);
  return {
    dataDir,
    net,
    runtime,
    async close() {
      await runtime.cleanupStale(new Set()).catch((e) => console.error('qemu cleanup:', e));
      await stopMetadataServer();
      await net.removeAll().catch((e) => console.error('network cleanup:', e));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `sh -c script` through envd and returns its exit code and stdout. */
export async function sh(
  client: EnvdClient,
  script: string,
  timeoutMs = 30_000,
): Promise<{ code: number; out: string; err: string }> {
  const headers = { authorization: `Basic ${Buffer.from('root:').toString('base64')}` };
  let code = -1;
  let out = '';
  let err = '';
  for await (const res of client.process.start(
    { process: { cmd: '/bin/sh', args: ['-c', script], envs: {} }, stdin: false },
    { headers, timeoutMs },
  )) {
    const ev = res.event?.event;
    if (ev?.case === 'data' && ev.value.output.case === 'stdout') out += Buffer.from(ev.value.output.value).toString();
    if (ev?.case === 'data' && ev.value.output.case === 'stderr') err += Buffer.from(ev.value.output.value).toString();
    if (ev?.case === 'end') code = ev.value.exitCode;
  }
  return { code, out, err };
}

export { createEnvdClient };
