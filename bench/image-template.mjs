#!/usr/bin/env node
// Templates from a container image (issue 19; prints JSON): a 100+ MB image (the musl test image
// plus 3 layers of a few thousand files, gzip and zstd) in Debian's docker-registry on loopback;
// the image template made cold (pull, verify, unpack, id shift, Wrenn's layer) and again cached
// (manifest only, nothing downloaded), then capsule create to first exec from it against the
// built-in `minimal` (both busybox roots; the target is within 10 %).
// Run as root after `npm run build`; needs docker-registry and zstd (scripts/setup.mjs).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  gzip,
  haveRegistry,
  MUSL_IMAGE_CONFIG,
  muslRootEntries,
  pushImage,
  startRegistry,
  tarOf,
  zstd,
} from '@wrenn/host-agent/testing/oci';
import { startAgent } from '../packages/host-agent/dist/src/agent.js';
import { createAgentClient } from '../packages/host-agent/dist/src/auth/client.js';
import { createLocalLayers } from '../packages/host-agent/dist/src/local-providers.js';
import { removeCgroupParent } from './lib/cgroup-parent.mjs';
import { latencyStats } from './lib/latency-stats.mjs';

if (!haveRegistry) {
  console.log(JSON.stringify({ skipped: 'docker-registry is not installed' }));
  process.exit(0);
}
const N = Number(process.env.BENCH_N ?? 15);
const FILES_PER_LAYER = Number(process.env.BENCH_FILES ?? 1000);
const FILE_KB = Number(process.env.BENCH_FILE_KB ?? 40);

function bulkLayer(n) {
  // Half random (incompressible) and half text, like binaries and sources in a real image.
  const text = Buffer.from('def handler(event):\n    return {"ok": True}\n'.repeat(Math.ceil((FILE_KB * 1024) / 44)));
  return [...Array(FILES_PER_LAYER)].map((_, i) => ({
    name: `opt/layer${n}/d${i % 50}/f${i}`,
    content: i % 2 ? randomBytes(FILE_KB * 1024) : text.subarray(0, FILE_KB * 1024),
  }));
}

const reg = await startRegistry();
const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-image-'));
const CGROUP_PARENT = 'wrenn-bench-image';
const network = {
  pool: '10.216.0.0/20',
  names: { netnsPrefix: 'wri-', ifPrefix: 'wi', chainPrefix: 'WRI' },
  metadataPort: 31252,
};
let layers;
let agent;
try {
  const tars = [await tarOf(muslRootEntries())];
  for (let n = 0; n < 3; n++) tars.push(await tarOf(bulkLayer(n)));
  const blobs = tars.map((t, n) =>
    n === 3
      ? { blob: zstd(t), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }
      : { blob: gzip(t), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
  );
  await pushImage(reg, 'bench/big-musl', 'v1', blobs, MUSL_IMAGE_CONFIG);
  const image = `${reg.host}/bench/big-musl:v1`;

  layers = await createLocalLayers(dataDir, { network, cgroupParent: CGROUP_PARENT });
  agent = await startAgent({ ...layers, dataDir, listen: { host: '127.0.0.1', port: 0 } });
  const c = createAgentClient(agent.url, agent.secret);
  const ensure = async () => {
    const t = performance.now();
    let result;
    for await (const ev of c.ensureImageTemplate({ image })) if (ev.event.case === 'result') result = ev.event.value;
    return { ms: performance.now() - t, result };
  };
  const cold = await ensure();
  const cached = await ensure();

  const createToExec = async (template) => {
    const t = performance.now();
    const { capsule } = await c.createCapsule({ template, timeoutSec: 600 });
    const r = await c.exec({ capsuleId: capsule.id, cmd: 'true' });
    const ms = performance.now() - t;
    if (r.exitCode !== 0) throw new Error(`exec failed in ${template}: ${r.error}`);
    await c.destroyCapsule({ id: capsule.id });
    return ms;
  };
  const templates = { minimal: 'minimal', image: cold.result.template.name };
  for (const t of Object.values(templates)) await createToExec(t); // builds minimal, warms caches
  const times = { minimal: [], image: [] };
  // Interleaved, so load from other work on the machine falls on both alike.
  for (let i = 0; i < N; i++) for (const [k, t] of Object.entries(templates)) times[k].push(await createToExec(t));
  const minimal = latencyStats(times.minimal);
  const fromImage = latencyStats(times.image);
  console.log(
    JSON.stringify(
      {
        bench: 'image-template',
        image_uncompressed_mb: Math.round(tars.reduce((s, x) => s + x.length, 0) / 1e6),
        image_compressed_mb: Math.round(blobs.reduce((s, x) => s + x.blob.length, 0) / 1e6),
        layers: blobs.length,
        template_cold_ms: Math.round(cold.ms),
        cold_downloaded_mb: Math.round(Number(cold.result.downloadedBytes) / 1e6),
        template_cached_ms: Math.round(cached.ms),
        cached_downloaded_bytes: Number(cached.result.downloadedBytes),
        create_to_exec_minimal: minimal,
        create_to_exec_image: fromImage,
        image_vs_minimal_p50: Math.round((fromImage.p50_ms / minimal.p50_ms) * 100) / 100,
      },
      null,
      2,
    ),
  );
} finally {
  await agent?.manager.destroyAll().catch(() => undefined);
  await agent?.close().catch(() => undefined);
  await layers?.close().catch(() => undefined);
  await layers?.networkManager.removeAll().catch(() => undefined);
  await reg.stop();
  rmSync(dataDir, { recursive: true, force: true });
  removeCgroupParent(CGROUP_PARENT);
}
