#!/usr/bin/env node
// OCI image pull + unpack into the host's layer cache (prints JSON): a ~120 MB image (3 layers,
// gzip and zstd, a few thousand files) from Debian's docker-registry on loopback, pulled cold
// (download, verify, unpack, id shift) and then cached (manifest + config only). Issue 19's
// template build and capsule-create figures: bench/image-template.mjs.
// Run as root after `npm run build`; needs docker-registry and zstd (scripts/setup.mjs).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzip, haveRegistry, pushImage, startRegistry, tarOf, zstd } from '@wrenn/host-agent/testing/oci';
import { pullImage } from '../packages/host-agent/dist/src/oci/index.js';

if (!haveRegistry) {
  console.log(JSON.stringify({ skipped: 'docker-registry is not installed' }));
  process.exit(0);
}
const FILES_PER_LAYER = Number(process.env.BENCH_FILES ?? 1000);
const FILE_KB = Number(process.env.BENCH_FILE_KB ?? 40);

function layerEntries(n) {
  // Half random (incompressible) and half text, like binaries and sources in a real image.
  const text = Buffer.from('def handler(event):\n    return {"ok": True}\n'.repeat(Math.ceil((FILE_KB * 1024) / 44)));
  return [...Array(FILES_PER_LAYER)].map((_, i) => ({
    name: `opt/layer${n}/d${i % 50}/f${i}`,
    content: i % 2 ? randomBytes(FILE_KB * 1024) : text.subarray(0, FILE_KB * 1024),
  }));
}

const reg = await startRegistry();
const cacheDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-oci-'));
try {
  const tars = [];
  for (let n = 0; n < 3; n++) tars.push(await tarOf(layerEntries(n)));
  const layers = tars.map((t, n) =>
    n === 2
      ? { blob: zstd(t), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }
      : { blob: gzip(t), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
  );
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['true'] },
    rootfs: { type: 'layers', diff_ids: [] },
  };
  await pushImage(reg, 'bench/big', 'v1', layers, config);
  const ref = `${reg.host}/bench/big:v1`;
  let t = performance.now();
  const cold = await pullImage(ref, { cacheDir });
  const coldMs = performance.now() - t;
  t = performance.now();
  const cached = await pullImage(ref, { cacheDir });
  const cachedMs = performance.now() - t;
  console.log(
    JSON.stringify(
      {
        image_uncompressed_mb: Math.round(tars.reduce((s, x) => s + x.length, 0) / 1e6),
        image_compressed_mb: Math.round(layers.reduce((s, x) => s + x.blob.length, 0) / 1e6),
        files: FILES_PER_LAYER * 3,
        cold_pull_ms: Math.round(coldMs),
        cold_downloaded_mb: Math.round(cold.downloadedBytes / 1e6),
        cached_pull_ms: Math.round(cachedMs),
        cached_downloaded_bytes: cached.downloadedBytes,
        cached_layers: cached.cachedLayers,
      },
      null,
      2,
    ),
  );
} finally {
  await reg.stop();
  rmSync(cacheDir, { recursive: true, force: true });
}
