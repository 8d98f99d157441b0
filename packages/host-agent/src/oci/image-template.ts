// "A template for this image reference": pulls the image (the manifest is always fetched, so the
// caller's access to the image is checked each time; layers come from the host's cache when
// there) and makes or finds the host template for that image manifest, named by its digest so
// every caller of the same image shares it. Pull progress goes out as log lines.
import type { TemplateManifest } from '../rootfs/manifest.js';
import type { ProgressFn } from '../rootfs/recipe.js';
import type { TemplateStore } from '../rootfs/template-store.js';
import { type PulledImage, type PullOptions, type PullProgress, pullImage } from './image-pull.js';

export interface ImageTemplateOptions extends Omit<PullOptions, 'onProgress'> {
  onProgress?: ProgressFn;
}

export interface ImageTemplate {
  template: TemplateManifest;
  pulled: PulledImage;
}

/** The host template name of an image manifest digest (sha256:<hex>). */
export function imageTemplateName(manifestDigest: string): string {
  return `oci-${manifestDigest.replace(/^sha256:/, '').slice(0, 40)}`;
}

const MIB = 1048576;

/** Pull events as lines: one per layer, and a download line every 16 MiB of a layer. */
export function pullProgressLines(image: string, out: ProgressFn): (p: PullProgress) => void {
  const got = new Map<string, number>();
  return (p) => {
    const short = p.digest.replace(/^sha256:/, '').slice(0, 12);
    if (p.event === 'manifest') out(`pulling ${image} (manifest ${short})`);
    else if (p.event === 'download') {
      const before = got.get(p.digest) ?? 0;
      const now = before + (p.bytes ?? 0);
      got.set(p.digest, now);
      if (Math.floor(now / (16 * MIB)) > Math.floor(before / (16 * MIB)))
        out(`layer ${short}: ${(now / MIB).toFixed(0)} MiB downloaded`);
    } else if (p.event === 'layer') {
      const which = `layer ${(p.layerIndex ?? 0) + 1}/${p.layerCount ?? '?'} ${short}`;
      out(p.cached ? `${which}: cached` : `${which}: ${((p.bytes ?? 0) / MIB).toFixed(1)} MiB pulled and unpacked`);
    }
  };
}

export async function ensureImageTemplate(
  store: TemplateStore,
  image: string,
  opts: ImageTemplateOptions,
): Promise<ImageTemplate> {
  const { onProgress, ...pull } = opts;
  const log = onProgress ?? (() => {});
  const pulled = await pullImage(image, { ...pull, onProgress: pullProgressLines(image, log) });
  const template = await store.fromImage(imageTemplateName(pulled.manifestDigest), pulled, { onProgress: log });
  return { template, pulled };
}
