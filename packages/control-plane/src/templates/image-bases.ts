// FROM <container image> in a template build: a FROM (or COPY --from) naming no template of the
// team is pulled as an image into the team's image template (services/image-templates.ts); the
// pull's progress (manifest, each layer cached or downloaded, MiB) goes to the build log as it comes
// (and to POST /v1/images/pull's answer, the pull before a capsule create with `image`).
import type { RegistryCredentials } from '@wrenn/protocol';
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

/** A pull the registry has answered for (manifest found, access granted) while its layers still come. */
export interface StartedPull {
  /** Where the pull was asked for ("Dockerfile line 1: FROM x"), for its errors. */
  readonly label: string;
  /** Sends the pull's lines to `out` (those so far, then each as it comes); the template once pulled. */
  follow(out: (line: string) => void): Promise<ImageTemplate>;
}

export const isStartedPull = (x: object): x is StartedPull => 'follow' in x;

/**
 * Starts pulling `image` for the team and resolves once the registry has answered for it (so a
 * missing image or refused credentials fail here, before a build is recorded); the layers keep
 * coming in the background and their progress lines wait for `follow`.
 */
export function startPull(
  ctx: ControlPlaneContext,
  teamId: string,
  image: string,
  label: string,
  credentials?: RegistryCredentials,
): Promise<StartedPull> {
  const lines: string[] = [`${label}: pulling container image ${image}`];
  let sink: ((line: string) => void) | null = null;
  const emit = (line: string) => (sink ? sink(line) : lines.push(line));
  let answered: () => void = () => undefined;
  const registryAnswered = new Promise<void>((resolve) => {
    answered = resolve;
  });
  const done = ensureImageTemplate(ctx, teamId, {
    image,
    ...(credentials ? { credentials } : {}),
    onProgress: (line) => {
      emit(`  ${line}`);
      answered();
    },
  }).then((got) => {
    emit(
      `${label}: ${got.reference}: ${got.layerCount} layer${got.layerCount === 1 ? '' : 's'}, ${got.cachedLayers} cached, ${mib(got.downloadedBytes)} downloaded`,
    );
    return got;
  });
  // Failures after the registry answered are the follower's (the build's) to report.
  done.catch(() => undefined);
  return Promise.race([registryAnswered, done]).then(() => ({
    label,
    follow(out) {
      for (const line of lines.splice(0)) out(line);
      sink = out;
      return done;
    },
  }));
}
