// The host's layer cache: <cacheDir>/layers/<hex>/ holds one unpacked layer (overlay format,
// shifted ids) per compressed-blob digest. A layer is downloaded to tmp/, its digest and size
// checked, unpacked into tmp/ and renamed into place, so an interrupted pull leaves nothing that
// looks cached; the next pull removes the leftovers of that layer and starts it again.
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError } from '@wrenn/protocol';
import { acquireLock, alive } from '../rootfs/build-lock.js';
import { recordLayer, touch } from './image-gc.js';
import type { LayerDescriptor } from './image-manifest.js';
import { decompressedLayer } from './layer-decompress.js';
import { type UnpackStats, unpackLayer } from './layer-unpack.js';
import type { RegistryClient } from './registry-client.js';

export interface LayerFetch {
  dir: string;
  cached: boolean;
  downloadedBytes: number;
  stats?: UnpackStats;
}

/**
 * Removes what pulls killed mid-way left in tmp/: a layer's blob and unpack dir when no live
 * process holds its lock (lock files whose pid is gone go too). A live pull creates its lock
 * before its files and removes them before releasing it, so it never loses anything here.
 */
export async function sweepLeftovers(cacheDir: string): Promise<number> {
  const tmp = join(cacheDir, 'tmp');
  const names = await readdir(tmp).catch(() => [] as string[]);
  let removed = 0;
  const held = new Set<string>();
  for (const n of names.filter((x) => x.endsWith('.lock'))) {
    const pid = Number.parseInt(await readFile(join(tmp, n), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) held.add(n.slice(0, -'.lock'.length));
  }
  for (const n of names) {
    const hex = n.replace(/\.(lock|blob|unpack)$/, '');
    if (hex === n || held.has(hex)) continue;
    await rm(join(tmp, n), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

export function layerDir(cacheDir: string, digest: string): string {
  return join(cacheDir, 'layers', digest.replace(/^sha256:/, ''));
}

/** Downloads `res` into `file`, verifying size and sha256 on the way. */
async function download(
  body: ReadableStream<Uint8Array> | null,
  file: string,
  layer: LayerDescriptor,
  onBytes: (n: number) => void,
) {
  if (!body) throw new InvalidArgumentError(`layer ${layer.digest}: empty response`);
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > layer.size)
        return cb(new InvalidArgumentError(`layer ${layer.digest} is larger than its ${layer.size} bytes`));
      hash.update(chunk);
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  await pipeline(body as unknown as NodeJS.ReadableStream, count, createWriteStream(file, { mode: 0o600 }));
  const got = `sha256:${hash.digest('hex')}`;
  if (size !== layer.size || got !== layer.digest)
    throw new InvalidArgumentError(`layer ${layer.digest}: downloaded ${size} bytes with digest ${got}: mismatch`);
}

// Fetches of one layer in flight in this process (the lock file only keeps other processes out).
const inFlight = new Map<string, Promise<LayerFetch>>();

export function fetchLayer(
  cacheDir: string,
  client: RegistryClient,
  layer: LayerDescriptor,
  onBytes: (n: number) => void = () => {},
): Promise<LayerFetch> {
  const key = layerDir(cacheDir, layer.digest);
  const running = inFlight.get(key);
  if (running) return running.then((r) => ({ ...r, cached: true, downloadedBytes: 0 }));
  const p = fetchLayerOnce(cacheDir, client, layer, onBytes).finally(() => inFlight.delete(key));
  inFlight.set(key, p);
  return p;
}

async function fetchLayerOnce(
  cacheDir: string,
  client: RegistryClient,
  layer: LayerDescriptor,
  onBytes: (n: number) => void,
): Promise<LayerFetch> {
  const dir = layerDir(cacheDir, layer.digest);
  if (existsSync(dir)) {
    await touch(dir);
    return { dir, cached: true, downloadedBytes: 0 };
  }
  const tmp = join(cacheDir, 'tmp');
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  await mkdir(join(cacheDir, 'layers'), { recursive: true, mode: 0o755 });
  const hex = layer.digest.replace(/^sha256:/, '');
  const lock = await acquireLock(join(tmp, `${hex}.lock`));
  try {
    if (existsSync(dir)) return { dir, cached: true, downloadedBytes: 0 };
    const blob = join(tmp, `${hex}.blob`);
    const work = join(tmp, `${hex}.unpack`);
    await rm(blob, { force: true });
    await rm(work, { recursive: true, force: true });
    let downloadedBytes = 0;
    try {
      const res = await client.blob(layer.digest);
      await download(res.body, blob, layer, (n) => {
        downloadedBytes += n;
        onBytes(n);
      });
      await mkdir(work, { mode: 0o755 });
      const stats = await unpackLayer(decompressedLayer(blob, layer.compression), work, layer.digest);
      await rename(work, dir);
      await recordLayer(cacheDir, dir);
      return { dir, cached: false, downloadedBytes, stats };
    } finally {
      await rm(blob, { force: true });
      await rm(work, { recursive: true, force: true });
    }
  } finally {
    await lock.release();
  }
}
