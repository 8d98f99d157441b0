// Container images as templates: ensureImageTemplate(ctx, teamId, {image}) asks a host agent to
// pull the image (the host's layer cache makes a second pull of the same image download nothing)
// and make its host template, then records it as the team's hidden template `img-<digest>` with
// the image's ENV/WORKDIR/USER as its configuration (applied to every capsule started from it, and
// inherited by a Dockerfile built FROM it) and its ENTRYPOINT+CMD as metadata (run by no capsule).
// The registry is asked for the manifest on every call with the caller's credentials, so a team
// only gets the images it can read.
import {
  asDomainError,
  CAPSULE_DEFAULTS,
  DomainError,
  domainError,
  InternalError,
  InvalidArgumentError,
  imageReferenceProblem,
  messageOf,
  PermissionDeniedError,
  type RegistryCredentials,
  registryCredentialsProblem,
} from '@wrenn/protocol';
import type { ImageTemplateResult } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../context.js';
import { setTemplateConfig, type TemplateConfig } from '../db/repositories/template-configs-extra.js';
import {
  createTemplate,
  resolveTemplate as resolveTemplateRow,
  type Template,
  updateTemplate,
} from '../db/repositories/templates.js';
import { NoHostError, pickHost } from '../scheduler/least-loaded.js';
import { noHostError } from './capsules/placement.js';

const IMAGE_PREFIX = 'img-';
const AGENT_PREFIX = 'oci-';

/** The team template name of an image manifest digest (hidden from listings like build layers). */
export const imageTemplateName = (manifestDigest: string): string =>
  `${IMAGE_PREFIX}${manifestDigest.replace(/^sha256:/, '').slice(0, 40)}`;
export const isImageTemplateName = (name: string): boolean => name.startsWith(IMAGE_PREFIX);
/** The host template an image template row stands for (shared by every team using that image). */
export const imageAgentTemplateName = (t: Template): string => `${AGENT_PREFIX}${t.name.slice(IMAGE_PREFIX.length)}`;

export interface EnsureImageTemplateInput {
  /** registry/repository[:tag][@sha256:...] (Docker Hub when no registry is named). */
  image: string;
  /** For the image's registry; without them the host's auth file, else anonymous. */
  credentials?: RegistryCredentials;
  /** Pull progress, one line at a time (layers, bytes). */
  onProgress?: (line: string) => void;
  /**
   * Where to pull: a host that can hold a capsule of this shape (and runtime), so the capsule the
   * caller makes next fits there; or exactly `hostId` (a capsule create pulling again on its host).
   * Default: any host running namespace capsules.
   */
  placement?: { vcpus: number; memoryMb: number; runtime?: string; hostId?: string };
}

export interface ImageTemplate {
  /** The team's template for the image: use its name as a capsule's template or a Dockerfile's FROM. */
  template: Template;
  config: TemplateConfig;
  /** registry/repository[:tag]@digest as pulled. */
  reference: string;
  manifestDigest: string;
  downloadedBytes: number;
  cachedLayers: number;
  layerCount: number;
}

/**
 * The image's run defaults as a template configuration. Its ENTRYPOINT/CMD are kept as metadata and
 * start nothing (templates/start-command.ts says why); a Dockerfile CMD over the image composes with them.
 */
export function imageConfig(c: ImageTemplateResult['config']): TemplateConfig {
  return {
    env: { ...(c?.env ?? {}) },
    workdir: c?.workdir ?? '',
    user: c?.user ?? '',
    startCmd: null,
    entrypoint: [...(c?.entrypoint ?? [])],
    cmd: [...(c?.cmd ?? [])],
    readyCmd: null,
    readyTimeoutMs: null,
    vcpus: null,
    memoryMb: null,
  };
}

/**
 * The agent's error as the caller's: a registry refusing the credentials is a 403 (a 401 would
 * read as the caller's own API key being wrong), anything else keeps its kind.
 */
function pullError(image: string, err: unknown): Error {
  const e = asDomainError(err);
  const message = `image ${image}: ${messageOf(e)}`;
  if (!(e instanceof DomainError)) return new InternalError(message, { cause: err });
  if (e.kind === 'unauthenticated' || e.kind === 'permission_denied')
    return new PermissionDeniedError(message, { code: 'registry_access_denied', cause: err });
  return domainError(e.kind, message, { code: e.code, cause: err });
}

export async function ensureImageTemplate(
  ctx: ControlPlaneContext,
  teamId: string,
  input: EnsureImageTemplateInput,
): Promise<ImageTemplate> {
  const problem =
    imageReferenceProblem(input.image ?? '') ?? registryCredentialsProblem(input.credentials, 'registry credentials');
  if (problem) throw new InvalidArgumentError(problem);
  const creds = input.credentials;
  const db = ctx.database.db;
  // The host pulls on demand (its layer cache makes that cheap when it has the image): image
  // templates are made where they are used, on a host that can take the capsule that follows.
  const where = input.placement ?? { vcpus: 1, memoryMb: 1, runtime: 'namespace' };
  const runtime = where.runtime ?? 'namespace';
  const { host } = await pickHost(db, {
    vcpus: where.vcpus,
    memoryMb: where.memoryMb,
    runtime,
    ...(where.hostId ? { hostId: where.hostId } : {}),
  }).catch(async (err: unknown) => {
    if (err instanceof NoHostError)
      throw await noHostError(ctx, runtime, { name: input.image, runtimes: [runtime] }, err);
    throw err;
  });
  let result: ImageTemplateResult | undefined;
  try {
    const stream = ctx.agents.client(host).ensureImageTemplate({
      image: input.image,
      ...(creds ? { username: creds.username, password: creds.password } : {}),
    });
    for await (const ev of stream) {
      if (ev.event.case === 'progress') input.onProgress?.(ev.event.value);
      else if (ev.event.case === 'result') result = ev.event.value;
    }
  } catch (err) {
    throw pullError(input.image, err);
  }
  if (!result?.template) throw new Error(`host ${host.id} ended the image pull without a result`);
  const name = imageTemplateName(result.manifestDigest);
  const fields = {
    hostId: host.id,
    runtimes: result.template.runtimes,
    sizeBytes: Number(result.template.sizeBytes),
  };
  let row = await resolveTemplateRow(db, teamId, name);
  if (row && row.teamId === teamId) {
    if (row.hostId !== host.id) row = (await updateTemplate(db, row.id, fields)) ?? row;
  } else {
    row = await createTemplate(db, {
      name,
      kind: 'image',
      teamId,
      parent: null,
      vcpus: CAPSULE_DEFAULTS.vcpus,
      memoryMb: CAPSULE_DEFAULTS.memoryMb,
      ...fields,
    }).catch(async (err: unknown) => {
      // Made by a concurrent call for the same image meanwhile.
      const again = await resolveTemplateRow(db, teamId, name);
      if (again && again.teamId === teamId) return again;
      throw err;
    });
  }
  const config = imageConfig(result.config);
  await setTemplateConfig(db, row.id, config);
  return {
    template: row,
    config,
    reference: result.reference,
    manifestDigest: result.manifestDigest,
    downloadedBytes: Number(result.downloadedBytes),
    cachedLayers: result.cachedLayers,
    layerCount: result.layerCount,
  };
}
