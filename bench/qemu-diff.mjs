#!/usr/bin/env node
// QEMU memory snapshot size on disk (prints JSON): a `minimal` VM capsule with a process counting
// in memory is paused once (Full generation: the guest RAM file, zero blocks left out, plus the
// device state), resumed, and then BENCH_N times: a small change inside (a file written and
// synced), paused again (Diff generation: only the 4 KiB blocks that differ from the chain) and
// resumed. Sizes are disk usage (st_blocks * 512); the ratio is diff / full. Also reports the
// pause and resume times of both kinds. KVM when it can run a vCPU here, else software emulation.
// Run as root after `npm run build`. Own data dir, address pool, interface names and metadata port.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEnvdClient } from '../packages/host-agent/dist/src/envd-client/index.js';
import {
  NetworkManager,
  startMetadataServer,
  stopMetadataServer,
} from '../packages/host-agent/dist/src/network/index.js';
import { createQemuRuntime } from '../packages/host-agent/dist/src/runtimes/qemu/index.js';
import { generationFile, readHeader } from '../packages/host-agent/dist/src/snapshot/index.js';

const N = Number(process.env.BENCH_N ?? 3);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const diskBytes = (p) => statSync(p).blocks * 512;

async function sh(address, script) {
  const client = createEnvdClient(address); // a fresh connection after every resume
  const headers = { authorization: `Basic ${Buffer.from('root:').toString('base64')}` };
  let out = '';
  let code = -1;
  try {
    for await (const res of client.process.start(
      { process: { cmd: '/bin/sh', args: ['-c', script], envs: {} }, stdin: false },
      { headers, timeoutMs: 60_000 },
    )) {
      const ev = res.event?.event;
      if (ev?.case === 'data' && ev.value.output.case === 'stdout')
        out += Buffer.from(ev.value.output.value).toString();
      if (ev?.case === 'end') code = ev.value.exitCode;
    }
  } finally {
    client.close();
  }
  if (code !== 0) throw new Error(`guest command failed (${code}): ${script}`);
  return out;
}

/** The newest generation file and the device state of a just-paused capsule, on disk. */
async function parts(state) {
  const h = await readHeader(state.chainDir);
  return {
    memory: diskBytes(generationFile(state.chainDir, h.generations.at(-1))),
    device: diskBytes(state.statePath),
    generations: h.generations.length,
  };
}

const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-qemudiff-'));
const net = new NetworkManager({
  dataDir,
  pool: '10.226.0.0/24',
  names: { netnsPrefix: 'wrqd-', ifPrefix: 'wqd', chainPrefix: 'WRQD' },
  metadataPort: 31264,
});
const runtime = createQemuRuntime({ dataDir, onProgress: (m) => process.stderr.write(`[images] ${m}\n`) });
let accel;
let full;
const diffs = [];
const fullPauseMs = [];
const diffPauseMs = [];
const resumeMs = [];
let lastKeeps = '';
try {
  await net.removeAll();
  await net.init();
  await startMetadataServer({ manager: net });
  accel = await runtime.accelerator();
  await runtime.images('minimal');
  const id = 'cl-qdiffbench';
  const metadata = { WRENN_SANDBOX_ID: id, WRENN_TEMPLATE_ID: 'minimal' };
  const n = await net.create({ id, internet: false, metadata });
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
  await sh(
    h.address,
    "sh -c 'i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done' </dev/null >/dev/null 2>&1 & sleep 1",
  );
  let t = performance.now();
  const p0 = await runtime.pause(h, 'memory-snapshot');
  fullPauseMs.push(Math.round(performance.now() - t));
  if (p0.snapshot?.kind !== 'full') throw new Error(`the first pause wrote ${p0.snapshot?.kind}, not full`);
  full = { ...(await parts(h.state)), total: p0.snapshot.bytes };
  process.stderr.write(`[full] ${JSON.stringify(full)} in ${fullPauseMs[0]} ms\n`);
  for (let i = 0; i < N; i++) {
    t = performance.now();
    await runtime.resume(h);
    resumeMs.push(Math.round(performance.now() - t));
    const before = Number(await sh(h.address, 'cat /dev/shm/count'));
    await sh(h.address, `echo "small change ${i}" > /root/change-${i}.txt && sync`);
    t = performance.now();
    const p = await runtime.pause(h, 'memory-snapshot');
    diffPauseMs.push(Math.round(performance.now() - t));
    if (p.snapshot?.kind !== 'diff') throw new Error(`re-pause ${i + 1} wrote ${p.snapshot?.kind}, not diff`);
    diffs.push({ ...(await parts(h.state)), total: p.snapshot.bytes, count_before: before });
    lastKeeps = p.keeps;
    process.stderr.write(`[diff ${i + 1}/${N}] ${JSON.stringify(diffs.at(-1))} in ${diffPauseMs.at(-1)} ms\n`);
  }
  t = performance.now();
  await runtime.resume(h);
  resumeMs.push(Math.round(performance.now() - t));
  const after = Number(await sh(h.address, 'sleep 0.5; cat /dev/shm/count'));
  if (!(after > (diffs.at(-1)?.count_before ?? 0))) throw new Error(`the counter did not continue (${after})`);
  await runtime.destroy(h);
  await net.destroy(id);
} finally {
  await runtime.cleanupStale(new Set()).catch(() => {});
  await stopMetadataServer();
  await net.removeAll().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
}
const diffTotal = pct(
  diffs.map((d) => d.total),
  50,
);
const diffMemory = pct(
  diffs.map((d) => d.memory),
  50,
);
console.log(
  JSON.stringify(
    {
      bench: 'qemu-diff',
      accel: accel?.accel,
      accel_reason: accel?.reason,
      template: 'minimal',
      memory_mb: 512,
      change: 'a small file written and synced in the guest (a process counting in memory keeps running)',
      how_found:
        'diff = 4 KiB blocks whose bytes differ from the chain, by comparison (QEMU 7.2 exports no dirty-page list to files)',
      full_bytes: { total: full.total, memory: full.memory, device_state: full.device },
      diff_bytes_p50: {
        total: diffTotal,
        memory: diffMemory,
        device_state: pct(
          diffs.map((d) => d.device),
          50,
        ),
      },
      diff_bytes_each: diffs.map((d) => d.total),
      ratio_diff_over_full: Number((diffTotal / full.total).toFixed(4)),
      ratio_memory_only: Number((diffMemory / full.memory).toFixed(4)),
      pause_full_ms: fullPauseMs[0],
      pause_diff_ms_p50: pct(diffPauseMs, 50),
      resume_ms_p50: pct(resumeMs, 50),
      generations_after: diffs.at(-1)?.generations,
      last_pause_says: lastKeeps,
      n: diffs.length,
    },
    null,
    2,
  ),
);
