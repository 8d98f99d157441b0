// FROM <container image> in a template build: a FROM (or COPY --from) naming no template of the
// team is pulled as an image into the team's image template (services/image-templates.ts); the
// pull's progress (manifest, each layer cached or downloaded, MiB) goes to the build log.
import type { ControlPlaneContext } from '../context.js';
import { validateTemplateName } from '../db/repositories/templates.js';
import { ensureImageTemplate, type ImageTemplate } from '../services/image-templates.js';

/** Could be a template name (no registry, tag, digest or path): looked up as a template first. */
export function isPlainTemplateName(name: string): boolean {
  try {
    validateTemplateName(name);
    return true;
  } catch {
    return false;
  }
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** Pulls `image` for the team; `log` gets each progress line and a summary. */
export async function pullBase(
  ctx: ControlPlaneContext,
  teamId: string,
  image: string,
  label: string,
  log?: string[],
): Promise<ImageTemplate> {
  log?.push(`${label}: pulling container image ${image}`);
  const got = await ensureImageTemplate(ctx, teamId, { image, onProgress: (line) => log?.push(`  ${line}`) });
  log?.push(
    `${label}: ${got.reference}: ${got.layerCount} layer${got.layerCount === 1 ? '' : 's'}, ${got.cachedLayers} cached, ${mib(got.downloadedBytes)} downloaded`,
  );
  return got;
}
