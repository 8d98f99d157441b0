#!/usr/bin/env node
// Volume file system speed against `wrenn up` (prints JSON): the same file operations on one volume
// as a QEMU VM sees it (virtio-9p export, cache=none) and as a namespace capsule sees it (idmapped
// bind of the host mount), and, for scale, on the VM's own root disk (ext4 on qcow2). Timed inside
// the capsule (/proc/uptime, 10 ms steps), p50 over BENCH_N rounds (default 3):
// write 32 MiB with fsync, read it back, create 300 small files, list them, remove them.
// Software emulation (TCG) where /dev/kvm cannot run a vCPU: the VM figures include its slow CPU.
// Templates from the shared test cache (BENCH_IMAGES, default /var/cache/wrenn-test-images).
// Run as root after `npm run build`.
import { execFileSync } from 'node:child_process';
import { startBenchStack } from './lib/bench-stack.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 3);
const IMAGES = process.env.BENCH_IMAGES ?? '/var/cache/wrenn-test-images';
execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }); // throws without QEMU

/** One round in directory $1: each step's time in ms, as "step ms" lines. */
const ROUND = `
d="$1"; mkdir -p "$d"; t() { read -r up _ < /proc/uptime; echo "\${up%.*}\${up#*.}0"; }
s=$(t); dd if=/dev/zero of="$d/big" bs=1M count=32 conv=fsync 2>/dev/null; e=$(t); echo "write_32mib_fsync $((e - s))"
s=$(t); dd if="$d/big" of=/dev/null bs=1M 2>/dev/null; e=$(t); echo "read_32mib $((e - s))"
mkdir -p "$d/many"
s=$(t); i=0; while [ $i -lt 300 ]; do echo x > "$d/many/f$i"; i=$((i + 1)); done; e=$(t); echo "create_300_files $((e - s))"
s=$(t); ls -l "$d/many" > /dev/null; e=$(t); echo "list_300_files $((e - s))"
s=$(t); rm -r "$d/many" "$d/big"; e=$(t); echo "remove_all $((e - s))"
`;

const stack = await startBenchStack(
  'volume-9p',
  { pool: '10.219.6.0/24', prefix: 'v', metadataPort: 31257 },
  { imagesDir: IMAGES },
);
const api = (method, path, body) => stack.api(method, `/v1${path}`, body);

/** N rounds of the file steps in `dir` of capsule `id` (as root): p50 per step. */
async function measure(id, dir) {
  const per = {};
  for (let i = 0; i < N; i++) {
    const r = await api('POST', `/capsules/${id}/exec`, {
      cmd: '/bin/sh',
      args: ['-c', ROUND, 'round', dir],
      user: 'root',
      timeout_sec: 600,
    });
    if (r.exit_code !== 0) throw new Error(`round in ${dir} failed: ${r.stderr}`);
    for (const line of r.stdout.trim().split('\n')) {
      const [step, ms] = line.split(' ');
      (per[step] ??= []).push(Number(ms));
    }
  }
  return Object.fromEntries(Object.entries(per).map(([k, v]) => [k, latencyStats(v, { percentiles: [50] })]));
}

try {
  await api('POST', '/volumes', { name: 'bench-9p', size_mb: 256 });
  const mounts = [{ name: 'bench-9p', path: '/data' }];
  const vm = await api('POST', '/capsules', {
    template: 'minimal',
    runtime: 'qemu',
    memory_mb: 256,
    timeout_sec: 3600,
    volume_mounts: mounts,
  });
  const ns = await api('POST', '/capsules', { template: 'minimal', timeout_sec: 3600, volume_mounts: mounts });
  const result = {
    bench: 'volume-9p',
    what: 'file steps on one volume (ms, p50, timed inside the capsule with 10 ms steps)',
    qemu_volume_9p: await measure(vm.id, '/data/vm'),
    qemu_own_disk: await measure(vm.id, '/root/bench'),
    namespace_volume: await measure(ns.id, '/data/ns'),
    accel: 'tcg where /dev/kvm cannot run a vCPU',
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await stack.stop();
}
