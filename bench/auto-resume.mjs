#!/usr/bin/env node
// Auto-resume latency against `wrenn up` (prints JSON): a `minimal` capsule created through the
// official e2b SDK with `lifecycle: {onTimeout: 'pause', autoResume: true}` is put to sleep, then
// one request through the sandbox proxy (E2b-Sandbox-Id / E2b-Sandbox-Port headers) is timed from
// its start until its answer, p50/p99 over BENCH_N runs, for:
// - freeze (E2B's pause, memory kept): a busybox httpd started before the pause answers on 8080;
// - hibernate (disk-only pause, native `mode: 'hibernate'`): processes restart, so the timed
//   request is envd's own /health on 49983, answered once the capsule has booted again.
// - qemu (skip with BENCH_QEMU=0; BENCH_QEMU_N runs, default 5): a `minimal` VM (256 MiB, software
//   emulation where /dev/kvm cannot run a vCPU) made through the native API with `auto_resume`,
//   a busybox httpd on 8080 in it; paused with its memory written to disk (the VM's default pause:
//   QEMU stopped, its memory freed) and, apart, frozen (vCPUs stopped, memory kept in QEMU).
// Templates come from the shared test cache (BENCH_IMAGES, default /var/cache/wrenn-test-images).
// Run as root after `npm run build`.
import { execFileSync } from 'node:child_process';
import { Sandbox } from 'e2b';
import { startBenchStack } from './lib/bench-stack.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

const N = Number(process.env.BENCH_N ?? 20);
const N_QEMU = Number(process.env.BENCH_QEMU_N ?? 5);
const IMAGES = process.env.BENCH_IMAGES ?? '/var/cache/wrenn-test-images';
const stats = (xs) => latencyStats(xs);
const hasQemu = (() => {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const stack = await startBenchStack(
  'auto-resume',
  { pool: '10.219.4.0/24', prefix: 'a', metadataPort: 31255 },
  { imagesDir: IMAGES },
);
const { up } = stack;

/** One request through the proxy; throws unless it is answered with 2xx. */
async function proxied(id, port, path) {
  const r = await fetch(`${up.url}${path}`, { headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': String(port) } });
  const body = await r.text();
  if (r.status < 200 || r.status > 299) throw new Error(`${path} on port ${port}: ${r.status} ${body.slice(0, 200)}`);
  return body;
}

/** A native API call as the admin; throws unless it succeeds. */
const api = (method, path, body) => stack.api(method, `/v1${path}`, body);

/** Pauses through the native API; no mode: the runtime's default (a VM writes its memory to disk). */
const nativePause = (id, mode) => api('POST', `/capsules/${id}/pause`, mode ? { mode } : {});

/** Times the first proxied request to the paused capsule until its answer, `n` times per pause mode. */
async function timeWakes(id, n, mode) {
  const times = [];
  for (let i = 0; i < n; i++) {
    await nativePause(id, mode);
    const t0 = performance.now();
    if ((await proxied(id, 8080, '/index.html')) !== 'awake') throw new Error('wrong answer');
    times.push(performance.now() - t0);
  }
  return times;
}

/** The same wake-ups for a QEMU VM: memory to disk (the VM default) and freeze. */
async function qemuWakes() {
  if (process.env.BENCH_QEMU === '0') return { skipped: 'BENCH_QEMU=0' };
  if (!hasQemu) return { skipped: 'qemu-system-x86_64 is not installed' };
  const vm = await api('POST', '/capsules', {
    template: 'minimal',
    runtime: 'qemu',
    memory_mb: 256,
    timeout_sec: 3600,
    auto_resume: true,
  });
  try {
    await api('POST', `/capsules/${vm.id}/exec`, {
      cmd: 'mkdir -p /tmp/www && echo -n awake > /tmp/www/index.html && (busybox httpd -p 8080 -h /tmp/www &)',
    });
    for (let i = 0; (await proxied(vm.id, 8080, '/index.html').catch(() => '')) !== 'awake'; i++) {
      if (i === 100) throw new Error('busybox httpd in the VM did not answer on 8080 within 20 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const memory = await timeWakes(vm.id, N_QEMU, undefined);
    process.stderr.write(`qemu memory snapshot: ${JSON.stringify(stats(memory))}\n`);
    const freeze = await timeWakes(vm.id, N_QEMU, 'freeze');
    return {
      template: 'minimal',
      memory_mb: 256,
      accel: 'tcg where /dev/kvm cannot run a vCPU',
      memory_to_disk_httpd_8080: stats(memory),
      freeze_httpd_8080: stats(freeze),
    };
  } finally {
    await api('DELETE', `/capsules/${vm.id}`).catch(() => undefined);
  }
}

try {
  const opts = stack.e2bOptions;
  const sbx = await Sandbox.create('minimal', {
    ...opts,
    timeoutMs: 3_600_000,
    lifecycle: { onTimeout: 'pause', autoResume: true },
  });
  await sbx.files.write('/tmp/www/index.html', 'awake');
  await sbx.commands.run('busybox httpd -f -p 8080 -h /tmp/www', { background: true });
  for (let i = 0; (await proxied(sbx.sandboxId, 8080, '/index.html').catch(() => '')) !== 'awake'; i++) {
    if (i === 50) throw new Error('busybox httpd in the capsule did not answer on 8080 within 5 s');
    await new Promise((r) => setTimeout(r, 100));
  }

  const freeze = [];
  for (let i = 0; i < N; i++) {
    if (!(await Sandbox.pause(sbx.sandboxId, opts))) throw new Error('pause refused');
    const t0 = performance.now();
    if ((await proxied(sbx.sandboxId, 8080, '/index.html')) !== 'awake') throw new Error('wrong answer');
    freeze.push(performance.now() - t0);
  }
  process.stderr.write(`freeze: ${JSON.stringify(stats(freeze))}\n`);

  const hibernate = [];
  for (let i = 0; i < Math.max(3, Math.floor(N / 2)); i++) {
    await nativePause(sbx.sandboxId, 'hibernate');
    const t0 = performance.now();
    await proxied(sbx.sandboxId, 49983, '/health');
    hibernate.push(performance.now() - t0);
  }
  await sbx.kill();
  const qemu = await qemuWakes();
  console.log(
    JSON.stringify(
      {
        bench: 'auto-resume',
        what: 'first proxied request to a paused autoResume capsule until its answer (minimal)',
        namespace: {
          freeze_httpd_8080: stats(freeze),
          hibernate_envd_health: { ...stats(hibernate), processes_restarted: true },
        },
        qemu,
      },
      null,
      2,
    ),
  );
} finally {
  await stack.stop();
}
