// A template's manifest: <imagesDir>/<name>/manifest.json next to its layer <imagesDir>/<name>/rootfs.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '@wrenn/protocol';
import type { ImageDefaults } from '../oci/image-manifest.js';
import type { RuntimeName } from '../runtimes/runtime.js';

export type TemplateKind = 'base' | 'snapshot' | 'image';

/** Where an image template came from and what the image asks a container to run with. */
export interface TemplateImage {
  /** registry/repository[:tag]@digest as pulled. */
  reference: string;
  /** Digest of the linux/amd64 image manifest. */
  digest: string;
  defaults: ImageDefaults;
}

export interface TemplateManifest {
  name: string;
  /**
   * base: built from a recipe; snapshot: a capsule's upper layer over its parent's layers;
   * image: a small layer of Wrenn's own (mount points, accounts) over a container image's layers.
   */
  kind: TemplateKind;
  parent: string | null;
  /**
   * Layer ids whose rootfs layers stack into this root filesystem, top (this one) first. A layer id
   * is the directory under the images dir holding `rootfs/`: a template's name, or for a base
   * template rebuilt after its recipe changed, `<name>.v<recipe version>` (the older build stays under
   * its own id for what was made on it; see template-store.ts).
   */
  layers: string[];
  /** A base template's recipe version (recipe.ts `inputs`); absent on builds made before versions. */
  recipe?: string;
  /**
   * Unpacked container image layers (absolute dirs in the host's OCI layer cache, top first) under
   * `layers`: an image template's, inherited by every snapshot stacked on it.
   */
  imageLayers?: string[];
  /** An image template's origin and run defaults. */
  image?: TemplateImage;
  /** Runtimes that can start capsules from this template. */
  runtimes: RuntimeName[];
  created_at: string;
  /** Bytes this template's own layer occupies on disk. */
  size: number;
  /**
   * Capsules may create user namespaces (and with them every other kind, setns and mounts inside
   * them): rootless containers, bubblewrap. Default false: the seccomp filter refuses them.
   */
  nestedUserNamespaces?: boolean;
  /** Capsules may call perf_event_open (profilers). Default false. */
  perfEvents?: boolean;
  /** TCP ports a service of the template listens on; a capsule is handed out once they accept. */
  readyPorts?: number[];
}

/** The per-template security switches a template passes on to its snapshots. */
export type CapsuleFeatures = Pick<TemplateManifest, 'nestedUserNamespaces' | 'perfEvents'>;

export function capsuleFeatures(m: CapsuleFeatures): CapsuleFeatures {
  return {
    ...(m.nestedUserNamespaces ? { nestedUserNamespaces: true } : {}),
    ...(m.perfEvents ? { perfEvents: true } : {}),
  };
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function validateTemplateName(name: string): void {
  if (typeof name !== 'string' || !NAME.test(name) || name.includes('..')) {
    throw new Error(
      `invalid template name ${JSON.stringify(name)}: use 1-63 characters a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
}

// A layer id is a directory name under the images dir; a rebuilt base layer's is
// <name>.v<16 hex digits> (its recipe version). That is a valid template name on purpose: an agent
// of an older release sharing the images dir resolves it like any other. New templates may not take
// such a name (assertNewTemplateName).
const LAYER_ID = /^[a-z0-9][a-z0-9._-]{0,62}(\.v[0-9a-f]{16})?$/;
/** A versioned layer id: <name>.v<version>. */
export const VERSIONED_LAYER = /^([a-z0-9][a-z0-9._-]{0,62})\.v([0-9a-f]{16})$/;

/** Checks a layer id (a template name, or `<name>.v<16 hex digits>`) before it becomes a path. */
export function validateLayerId(id: string): void {
  if (typeof id !== 'string' || !LAYER_ID.test(id) || id.includes('..'))
    throw new Error(`invalid layer id ${JSON.stringify(id)}`);
}

/** The name of a template about to be made: valid, and not of the form kept for base template layers. */
export function assertNewTemplateName(name: string): void {
  validateTemplateName(name);
  if (VERSIONED_LAYER.test(name))
    throw new InvalidArgumentError(
      `template name "${name}" is reserved: names ending in .v and 16 hex digits are base template layers`,
    );
}

export const MANIFEST_FILE = 'manifest.json';
export const LAYER_DIR = 'rootfs';

export async function readManifest(templateDir: string): Promise<TemplateManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(templateDir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const m = JSON.parse(text) as TemplateManifest;
  if (!m || typeof m.name !== 'string' || !Array.isArray(m.layers) || m.layers.length === 0) {
    throw new Error(`${join(templateDir, MANIFEST_FILE)} is not a valid template manifest (name/layers missing)`);
  }
  if (!m.layers.every((l) => typeof l === 'string' && LAYER_ID.test(l) && !l.includes('..')))
    throw new Error(`${join(templateDir, MANIFEST_FILE)}: layers must be template names or <name>.v<version>`);
  if (m.recipe !== undefined && typeof m.recipe !== 'string')
    throw new Error(`${join(templateDir, MANIFEST_FILE)}: recipe must be a string`);
  for (const key of ['nestedUserNamespaces', 'perfEvents'] as const) {
    if (m[key] !== undefined && typeof m[key] !== 'boolean')
      throw new Error(`${join(templateDir, MANIFEST_FILE)}: ${key} must be true or false`);
  }
  if (
    m.readyPorts !== undefined &&
    (!Array.isArray(m.readyPorts) || !m.readyPorts.every((p) => Number.isInteger(p) && p > 0 && p < 65536))
  )
    throw new Error(`${join(templateDir, MANIFEST_FILE)}: readyPorts must be a list of TCP ports`);
  if (
    m.imageLayers !== undefined &&
    (!Array.isArray(m.imageLayers) || !m.imageLayers.every((d) => typeof d === 'string' && d.startsWith('/')))
  )
    throw new Error(`${join(templateDir, MANIFEST_FILE)}: imageLayers must be a list of absolute directories`);
  return m;
}

export async function writeManifest(templateDir: string, m: TemplateManifest): Promise<void> {
  await writeFile(join(templateDir, MANIFEST_FILE), `${JSON.stringify(m, null, 2)}\n`);
}

/** writeManifest by write + rename: a reader sees the old manifest or the new one, never a part. */
export async function replaceManifest(templateDir: string, m: TemplateManifest): Promise<void> {
  const tmp = join(templateDir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, `${JSON.stringify(m, null, 2)}\n`);
  await rename(tmp, join(templateDir, MANIFEST_FILE));
}

/** The manifest of a VM snapshot template: one layer (its own dir), runnable only on `runtime`. */
export async function writeVmSnapshotManifest(
  templateDir: string,
  t: { name: string; parent: string; runtime: TemplateManifest['runtimes'][number]; size: number },
): Promise<void> {
  await writeManifest(templateDir, {
    name: t.name,
    kind: 'snapshot',
    parent: t.parent,
    layers: [t.name],
    runtimes: [t.runtime],
    created_at: new Date().toISOString(),
    size: t.size,
  });
}
