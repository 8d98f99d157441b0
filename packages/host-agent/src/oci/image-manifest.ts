// The JSON documents of an image: index (multi-arch) → manifest → config + layers, in both the
// OCI and Docker schema 2 media types; picks linux/amd64 and reads the config's run defaults.
import { InvalidArgumentError, NotFoundError } from '@wrenn/protocol';
import { DIGEST } from './image-ref.js';

export const INDEX_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];
export const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface LayerDescriptor {
  digest: string;
  size: number;
  compression: LayerCompression;
}

export interface ImageManifest {
  configDigest: string;
  layers: LayerDescriptor[];
}

/** What the image asks a container to run with (its config's ENV, WORKDIR, USER, ENTRYPOINT, CMD). */
export interface ImageDefaults {
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
}

const LAYER_TYPES: Record<string, LayerCompression> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

function parseJson(body: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw new InvalidArgumentError(`${what} is not a JSON object`);
}

function checkDescriptor(d: Descriptor, what: string): asserts d is Descriptor & { digest: string; size: number } {
  if (typeof d?.digest !== 'string' || !DIGEST.test(d.digest))
    throw new InvalidArgumentError(`${what} has no sha256 digest (only sha256 is supported)`);
  if (!Number.isSafeInteger(d.size) || (d.size as number) < 0)
    throw new InvalidArgumentError(`${what} has no valid size`);
}

/** The media type of a document: the header's, else the one it declares, else guessed from its fields. */
export function documentKind(body: Buffer, headerType: string): 'index' | 'manifest' {
  const doc = parseJson(body, 'manifest');
  const type = typeof doc.mediaType === 'string' && doc.mediaType ? doc.mediaType : headerType;
  if (INDEX_TYPES.includes(type)) return 'index';
  if (MANIFEST_TYPES.includes(type)) return 'manifest';
  if (Array.isArray(doc.manifests)) return 'index';
  if (Array.isArray(doc.layers)) return 'manifest';
  throw new InvalidArgumentError(`unsupported manifest media type ${JSON.stringify(type)} (schema 1 images are not)`);
}

/** The digest of the linux/<arch> manifest in an index. */
export function pickPlatform(body: Buffer, arch = 'amd64'): string {
  const doc = parseJson(body, 'image index');
  const list = Array.isArray(doc.manifests) ? (doc.manifests as Descriptor[]) : [];
  const found = list.find((m) => m?.platform?.os === 'linux' && m.platform.architecture === arch);
  if (!found) {
    const have = list.map((m) => `${m?.platform?.os}/${m?.platform?.architecture}`).join(', ');
    throw new NotFoundError(`the image has no linux/${arch} variant (it has: ${have || 'none'})`);
  }
  checkDescriptor(found, `the linux/${arch} entry of the index`);
  return found.digest;
}

export function parseManifest(body: Buffer): ImageManifest {
  const doc = parseJson(body, 'manifest');
  const config = doc.config as Descriptor;
  checkDescriptor(config, 'the manifest config');
  if (!Array.isArray(doc.layers)) throw new InvalidArgumentError('the manifest has no layers list');
  const layers = (doc.layers as Descriptor[]).map((l, i): LayerDescriptor => {
    checkDescriptor(l, `layer ${i}`);
    const compression = LAYER_TYPES[l.mediaType ?? ''];
    if (!compression)
      throw new InvalidArgumentError(`layer ${i} has unsupported media type ${JSON.stringify(l.mediaType)}`);
    return { digest: l.digest, size: l.size, compression };
  });
  return { configDigest: config.digest, layers };
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined;
}

/** The run defaults from an image config blob; checks it is a linux/amd64 image. */
export function parseImageConfig(body: Buffer, arch = 'amd64'): ImageDefaults {
  const doc = parseJson(body, 'image config');
  if (doc.os !== undefined && doc.os !== 'linux')
    throw new InvalidArgumentError(`the image is for ${String(doc.os)}, not linux`);
  if (doc.architecture !== undefined && doc.architecture !== arch)
    throw new InvalidArgumentError(`the image is for ${String(doc.architecture)}, not ${arch}`);
  const c = (doc.config ?? {}) as Record<string, unknown>;
  const env: Record<string, string> = {};
  for (const kv of stringList(c.Env) ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const out: ImageDefaults = { env };
  if (typeof c.WorkingDir === 'string' && c.WorkingDir) out.workdir = c.WorkingDir;
  if (typeof c.User === 'string' && c.User) out.user = c.User;
  const entrypoint = stringList(c.Entrypoint);
  if (entrypoint) out.entrypoint = entrypoint;
  const cmd = stringList(c.Cmd);
  if (cmd) out.cmd = cmd;
  return out;
}
