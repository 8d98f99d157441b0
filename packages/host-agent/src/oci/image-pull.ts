// Pulls an image into the host's layer cache: reference → (index → linux/amd64) manifest →
// config and layers, each layer fetched once per host (layer-cache.ts). The result is the stack of
// unpacked layer directories (overlay lower dirs, top first) and the image's run defaults.
import { join } from 'node:path';
import { InvalidArgumentError } from '@wrenn/protocol';
import {
  documentKind,
  type ImageDefaults,
  INDEX_TYPES,
  MANIFEST_TYPES,
  parseImageConfig,
  parseManifest,
  pickPlatform,
} from './image-manifest.js';
import { formatImageReference, manifestReference, parseImageReference } from './image-ref.js';
import { fetchLayer, sweepLeftovers } from './layer-cache.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';

export interface PullProgress {
  /** 'download': bytes of a layer arrived (bytes = this chunk); 'layer': a layer is in the cache. */
  event: 'manifest' | 'download' | 'layer';
  digest: string;
  layerIndex?: number;
  layerCount?: number;
  cached?: boolean;
  bytes?: number;
}

export interface PullOptions extends RegistryClientOptions {
  /** The host's OCI cache, e.g. <WRENN_DIR>/oci. */
  cacheDir: string;
  onProgress?: (p: PullProgress) => void;
}

export interface PulledImage {
  /** The reference as resolved (registry/repository:tag@digest). */
  reference: string;
  /** Digest of the linux/amd64 manifest. */
  manifestDigest: string;
  /** Unpacked layer directories, top layer first (overlay lowerdir order). */
  layerDirs: string[];
  defaults: ImageDefaults;
  /** Bytes downloaded by this pull (0 when every layer was cached). */
  downloadedBytes: number;
  cachedLayers: number;
}

const MAX_LAYERS = 127;

export async function pullImage(image: string, opts: PullOptions): Promise<PulledImage> {
  const ref = parseImageReference(image);
  await sweepLeftovers(opts.cacheDir);
  const client = new RegistryClient(ref, opts);
  const accept = [...MANIFEST_TYPES, ...INDEX_TYPES];
  let doc = await client.manifest(manifestReference(ref), accept);
  if (documentKind(doc.body, doc.mediaType) === 'index') {
    doc = await client.manifest(pickPlatform(doc.body), MANIFEST_TYPES);
    if (documentKind(doc.body, doc.mediaType) !== 'manifest')
      throw new InvalidArgumentError('the index points at another index, not an image manifest');
  }
  opts.onProgress?.({ event: 'manifest', digest: doc.digest });
  const manifest = parseManifest(doc.body);
  if (manifest.layers.length === 0 || manifest.layers.length > MAX_LAYERS)
    throw new InvalidArgumentError(`the image has ${manifest.layers.length} layers (1..${MAX_LAYERS} supported)`);
  const defaults = parseImageConfig(await client.jsonBlob(manifest.configDigest));
  const layerDirs: string[] = [];
  let downloadedBytes = 0;
  let cachedLayers = 0;
  for (const [i, layer] of manifest.layers.entries()) {
    const got = await fetchLayer(opts.cacheDir, client, layer, (bytes) =>
      opts.onProgress?.({ event: 'download', digest: layer.digest, layerIndex: i, bytes }),
    );
    downloadedBytes += got.downloadedBytes;
    if (got.cached) cachedLayers++;
    layerDirs.unshift(got.dir);
    opts.onProgress?.({
      event: 'layer',
      digest: layer.digest,
      layerIndex: i,
      layerCount: manifest.layers.length,
      cached: got.cached,
      bytes: got.downloadedBytes,
    });
  }
  return {
    reference: `${formatImageReference({ ...ref, digest: undefined })}@${doc.digest}`,
    manifestDigest: doc.digest,
    layerDirs,
    defaults,
    downloadedBytes,
    cachedLayers,
  };
}

/** The host's OCI cache directory under the agent's data dir. */
export function ociCacheDir(wrennDir: string): string {
  return join(wrennDir, 'oci');
}
