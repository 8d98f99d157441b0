// The Docker Hub images E2B's template tests build from (`ubuntu:22.04`), served by Debian's
// docker-registry on a loopback port that `wrenn up` uses as its registry mirror
// (WRENN_REGISTRY_MIRROR), as a user without Docker Hub access would set it up. This machine has
// no Ubuntu image, so the stand-in is one layer made from the `base` template's Debian root
// filesystem (owners shifted back from the layer store's 100000+ range to their image ids),
// cached under /var/cache/wrenn-e2b-suite-images next to the `base` it was made from.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CACHE = process.env.WRENN_E2B_SUITE_IMAGES ?? '/var/cache/wrenn-e2b-suite-images';
/** Owners in template layers are stored shifted by this much (host-agent's layer store). */
const LAYER_ID_SHIFT = 100000;
export const STAND_IN_IMAGES = ['library/ubuntu:22.04'];

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The gzipped layer of `base`'s rootfs with owners shifted back, built once per `base`. */
function baseLayer(imagesDir) {
  const manifest = JSON.parse(readFileSync(join(imagesDir, 'base', 'manifest.json'), 'utf8'));
  const key = createHash('sha256').update(String(manifest.created_at)).digest('hex').slice(0, 16);
  const out = join(CACHE, `base-${key}.tar.gz`);
  if (existsSync(out)) return readFileSync(out);
  mkdirSync(CACHE, { recursive: true });
  // base's own layer: base/rootfs, or base.v<version>/rootfs once a changed recipe rebuilt it.
  const rootfs = join(imagesDir, manifest.layers[0], 'rootfs');
  // Every owner id in the tree, mapped down by the shift (tar's --owner-map/--group-map).
  const ids = (kind) =>
    [
      ...new Set(
        execFileSync('find', [rootfs, '-printf', kind === 'u' ? '%U\n' : '%G\n'])
          .toString()
          .split('\n'),
      ),
    ]
      .filter(Boolean)
      .map(Number);
  const map = (list) =>
    list
      .map((id) => `+${id} +${id >= LAYER_ID_SHIFT && id < LAYER_ID_SHIFT + 65536 ? id - LAYER_ID_SHIFT : id}`)
      .join('\n');
  const tmp = `${out}.${process.pid}.part`;
  writeFileSync(`${tmp}.owners`, `${map(ids('u'))}\n`);
  writeFileSync(`${tmp}.groups`, `${map(ids('g'))}\n`);
  try {
    execFileSync(
      'sh',
      [
        '-c',
        'tar -C "$1" --numeric-owner --owner-map="$2" --group-map="$3" --xattrs -cf - . | gzip -1 > "$4"',
        'sh',
        rootfs,
        `${tmp}.owners`,
        `${tmp}.groups`,
        tmp,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.owners`, { force: true });
    rmSync(`${tmp}.groups`, { force: true });
  }
  return readFileSync(out);
}

/**
 * Starts the registry, pushes the stand-in images and returns the mirror URL and a stop function.
 * `testing` is @wrenn/host-agent/testing/oci (startRegistry, pushBlob, pushManifest).
 */
export async function startImageMirror(testing, imagesDir, log) {
  if (!testing.haveRegistry) throw new Error('Debian docker-registry is not installed (scripts/setup.mjs installs it)');
  const t0 = Date.now();
  const layer = baseLayer(imagesDir);
  const reg = await testing.startRegistry();
  try {
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/bash'] },
        rootfs: { type: 'layers', diff_ids: [] },
      }),
    );
    for (const ref of STAND_IN_IMAGES) {
      const [repo, tag] = ref.split(':');
      await testing.pushBlob(reg, repo, config);
      await testing.pushBlob(reg, repo, layer);
      const doc = {
        schemaVersion: 2,
        mediaType: testing.OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length },
        ],
      };
      await testing.pushManifest(reg, repo, tag, doc, testing.OCI_MANIFEST);
    }
    log(
      `registry mirror http://${reg.host} serves ${STAND_IN_IMAGES.join(', ')} (${(layer.length / 1e6).toFixed(0)} MB layer from base, ${((Date.now() - t0) / 1000).toFixed(0)} s)`,
    );
    return { mirror: `http://${reg.host}`, stop: () => reg.stop() };
  } catch (err) {
    await reg.stop();
    throw err;
  }
}
