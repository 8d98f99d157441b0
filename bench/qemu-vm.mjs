#!/usr/bin/env node
// QEMU runtime benchmark (prints JSON): boot to envd ready, pause (memory snapshot to disk: the
// guest RAM file as a Full generation + device state; QEMU stopped) and resume, p50 over BENCH_N
// runs of a `minimal` VM capsule, plus the snapshot size (disk usage; bench/qemu-diff.mjs measures
// the Diff of a re-pause). Uses KVM when it can run a vCPU here, else software emulation (TCG; said in the output).
// Run as root after `npm run build`. Own data dir, address pool, interface names and metadata port.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NetworkManager,
  startMetadataServer,
  stopMetadataServer,
} from '../packages/host-agent/dist/src/network/index.js';
import { createQemuRuntime } from '../packages/host-agent/dist/src/runtimes/qemu/index.js';

const N = Number(process.env.BENCH_N ?? 3);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const summary = (xs) => ({ p50_ms: pct(xs, 50), min_ms: Math.min(...xs), max_ms: Math.max(...xs), n: xs.length });

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-qemu-'));
const net = new NetworkManager({
  dataDir,
  pool: '10.225.0.0/24',
  names: { netnsPrefix: 'wrqb-', ifPrefix: 'wqb', chainPrefix: 'WRQB' },
  metadataPort: 31263,
});
const runtime = createQemuRuntime({ dataDir, onProgress: (m) => process.stderr.write(`[images] ${m}\n`) });
const boot = [];
const pause = [];
const resume = [];
const sizes = [];
const kinds = new Set();
let accel;
try {
  await net.removeAll();
  await net.init();
  await startMetadataServer({ manager: net });
  accel = await runtime.accelerator();
  await runtime.images('minimal');
  for (let i = 0; i < N; i++) {
    const id = `cl-qbench${i}`;
    const metadata = { WRENN_SANDBOX_ID: id, WRENN_TEMPLATE_ID: 'minimal' };
    const n = await net.create({ id, internet: false, metadata });
    let t = performance.now();
    const h = await runtime.create({
      id,
      template: 'minimal',
      vcpus: 1,
      memoryMb: 512,
      envs: {},
      internet: false,
      metadata,
      network: { capsuleIp: n.capsuleIp, netnsPath: n.netnsPath },
    });
    boot.push(Math.round(performance.now() - t));
    t = performance.now();
    const p = await runtime.pause(h, 'memory-snapshot');
    pause.push(Math.round(performance.now() - t));
    sizes.push(p.snapshot?.bytes ?? 0);
    kinds.add(p.snapshot?.kind);
    t = performance.now();
    await runtime.resume(h);
    resume.push(Math.round(performance.now() - t));
    await runtime.destroy(h);
    await net.destroy(id);
    process.stderr.write(
      `[run ${i + 1}/${N}] boot ${boot.at(-1)} ms, pause ${pause.at(-1)} ms, resume ${resume.at(-1)} ms\n`,
    );
  }
} finally {
  await runtime.cleanupStale(new Set()).catch(() => {});
  await stopMetadataServer();
  await net.removeAll().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(
  JSON.stringify(
    {
      bench: 'qemu-vm',
      accel: accel?.accel,
      accel_reason: accel?.reason,
      template: 'minimal',
      memory_mb: 512,
      boot_to_envd_ready: summary(boot),
      pause_memory_snapshot: summary(pause),
      resume_from_snapshot: summary(resume),
      snapshot_bytes: { p50: pct(sizes, 50), kind: [...kinds].join(',') },
    },
    null,
    2,
  ),
);
