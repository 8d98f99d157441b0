#!/usr/bin/env node
// Fork latency against `wrenn up` (prints JSON): from the fork request for a running capsule until
// the fork has run a command, p50/p99 over BENCH_N runs.
// - namespace: a `base` capsule with 32 MiB of its own files, forked through the official e2b SDK
//   (Sandbox.fork, count 1; then count 4, all four running a command), the fork killed each time
//   (BENCH_FILES_MIB sets the size of the source's own files, default 32);
// - qemu (skip with BENCH_QEMU=0): a `minimal` VM (256 MiB) forked through the native API, fewer
//   runs (BENCH_QEMU_N, default 3): under software emulation each restore takes seconds.
// Templates come from the shared test cache (BENCH_IMAGES, default /var/cache/wrenn-test-images), so
// `base` is not rebuilt; the QEMU part keeps its VM images in its own temporary directory.
// Run as root after `npm run build`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from 'e2b';
import { withBenchStack } from './lib/bench-stack.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 20);
const N_QEMU = Number(process.env.BENCH_QEMU_N ?? 3);
/** MiB of the source's own files (what the namespace fork copies). */
const FILES_MIB = Number(process.env.BENCH_FILES_MIB ?? 32);
const IMAGES = process.env.BENCH_IMAGES ?? '/var/cache/wrenn-test-images';
const stats = (xs) => latencyStats(xs, { max: true });

const NET = { pool: '10.219.0.0/24', prefix: 'f', metadataPort: 31254 };

async function namespaceFork() {
  return withBenchStack('fork', NET, { imagesDir: IMAGES }, async (stack) => {
    const opts = stack.e2bOptions;
    const src = await Sandbox.create('base', { ...opts, timeoutMs: 3_600_000 });
    if (FILES_MIB > 0)
      await src.commands.run(`head -c ${FILES_MIB * 1048576} /dev/urandom > /home/user/data.bin && sync`);
    const one = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      const [f] = await Sandbox.fork(src.sandboxId, { ...opts, timeoutMs: 300_000 });
      if (!(f instanceof Sandbox)) throw f;
      const r = await f.commands.run('true');
      one.push(performance.now() - t0);
      if (r.exitCode !== 0) throw new Error('exec in the fork failed');
      await f.kill();
    }
    const four = [];
    for (let i = 0; i < Math.max(3, Math.floor(N / 4)); i++) {
      const t0 = performance.now();
      const forks = await Sandbox.fork(src.sandboxId, { ...opts, count: 4, timeoutMs: 300_000 });
      await Promise.all(
        forks.map((f) => {
          if (!(f instanceof Sandbox)) throw f;
          return f.commands.run('true');
        }),
      );
      four.push(performance.now() - t0);
      await Promise.all(forks.map((f) => f.kill()));
    }
    await src.kill();
    return { template: 'base', source_files_mib: FILES_MIB, count_1: stats(one), count_4_all_running: stats(four) };
  });
}

async function qemuFork() {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return { skipped: 'qemu-system-x86_64 is not installed' };
  }
  const images = mkdtempSync(join(tmpdir(), 'wrenn-bench-fork-images-'));
  try {
    return await withBenchStack('fork-qemu', NET, { imagesDir: images }, async (stack) => {
      const api = (method, path, body) => stack.api(method, `/v1${path}`, body);
      const exec = async (id) => {
        const r = await api('POST', `/capsules/${id}/exec`, { cmd: 'true' });
        if (r.exit_code !== 0) throw new Error(`exec in ${id} failed`);
      };
      const src = await api('POST', '/capsules', {
        template: 'minimal',
        runtime: 'qemu',
        memory_mb: 256,
        timeout_sec: 3600,
      });
      const times = [];
      for (let i = 0; i < N_QEMU; i++) {
        const t0 = performance.now();
        const r = await api('POST', `/capsules/${src.id}/fork`, { count: 1, timeout_sec: 600 });
        const f = r.forks[0]?.capsule;
        if (!f) throw new Error(`qemu fork failed: ${JSON.stringify(r.forks[0])}`);
        await exec(f.id);
        times.push(performance.now() - t0);
        await api('DELETE', `/capsules/${f.id}`);
      }
      await api('DELETE', `/capsules/${src.id}`);
      return { template: 'minimal', memory_mb: 256, count_1: stats(times) };
    });
  } finally {
    rmSync(images, { recursive: true, force: true });
  }
}

const namespace = await namespaceFork();
process.stderr.write(`namespace: ${JSON.stringify(namespace)}\n`);
const qemu = process.env.BENCH_QEMU === '0' ? { skipped: 'BENCH_QEMU=0' } : await qemuFork();
console.log(
  JSON.stringify(
    {
      bench: 'fork-latency',
      what: 'fork request of a running capsule until the fork has run `true`',
      namespace: { ...namespace, processes_restarted: true },
      qemu: { ...qemu, processes_restarted: false, accel: 'tcg where /dev/kvm cannot run a vCPU' },
    },
    null,
    2,
  ),
);
