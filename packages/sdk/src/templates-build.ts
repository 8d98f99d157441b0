// Templates built from a Dockerfile (POST /v1/templates): start a build with its context, follow
// its log while it runs, read its outcome. `buildTemplate` does all three and throws
// TemplateBuildError (with the log) when a step fails. Works in Node and browsers (fetch,
// FormData, Blob); the CLI's `wrenn template build` wraps it.
import type { ConnectionOptions } from './config.js';
import { WrennError } from './errors.js';
import { ApiClient } from './http.js';

export type TemplateBuildStatus = 'pending' | 'building' | 'ready' | 'error';

export interface TemplateBuildInfo {
  buildId: string;
  template: string;
  status: TemplateBuildStatus;
  /** The whole log so far. */
  logs: string;
  /** Why the build failed (the failing step, its exit code and the end of its output). */
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface TemplateBuildInput extends ConnectionOptions {
  /** Template name: 1-63 of a-z 0-9 . _ -, starting with a letter or digit. */
  name: string;
  /** Dockerfile text (FROM base|minimal|<your template> [AS stage], ARG, RUN, COPY/ADD [--from=stage], ENV, WORKDIR, USER, CMD, ENTRYPOINT, HEALTHCHECK). */
  dockerfile: string;
  /** Build context files COPY/ADD read: relative path -> content. */
  files?: Record<string, string | Uint8Array | Blob>;
  /** Or the whole context as a tar (gzip allowed); combined with `files` when both are given. */
  contextTar?: Uint8Array | Blob;
  /** Values of the Dockerfile's ARGs (like `docker build --build-arg NAME=value`). */
  buildArgs?: Record<string, string>;
  signal?: AbortSignal;
}

export interface BuildTemplateOptions extends TemplateBuildInput {
  /** Log text as it arrives (step headers, command output, "---> cached" lines). */
  onLog?: (text: string) => void;
}

/** A build that ended in error; `build.logs` holds the whole log. */
export class TemplateBuildError extends WrennError {
  constructor(readonly build: TemplateBuildInfo) {
    super(build.error ?? `template build ${build.buildId} failed`, { code: 'build_failed' });
  }
}

interface BuildJson {
  build_id: string;
  template: string;
  status: TemplateBuildStatus;
  logs: string;
  error: string | null;
  started_at: string;
  finished_at: string | null;
}

const buildInfo = (j: BuildJson): TemplateBuildInfo => ({
  buildId: j.build_id,
  template: j.template,
  status: j.status,
  logs: j.logs,
  error: j.error,
  startedAt: new Date(j.started_at),
  finishedAt: j.finished_at ? new Date(j.finished_at) : null,
});

const toBlob = (d: string | Uint8Array | Blob): Blob => (d instanceof Blob ? d : new Blob([d as BlobPart]));

/** Uploads the Dockerfile and context and starts the build; resolves with its id at once. */
export async function startTemplateBuild(input: TemplateBuildInput): Promise<{ buildId: string; template: string }> {
  const form = new FormData();
  form.set('name', input.name);
  form.set('dockerfile', input.dockerfile);
  if (input.buildArgs) form.set('build_args', JSON.stringify(input.buildArgs));
  if (input.contextTar !== undefined) form.set('context', toBlob(input.contextTar), 'context.tar');
  for (const [path, data] of Object.entries(input.files ?? {})) form.append('files', toBlob(data), path);
  const api = new ApiClient(input);
  const r = await api.json<{ build_id: string; template: string }>('POST', '/v1/templates', {
    body: form,
    timeoutMs: input.requestTimeoutMs ?? 0,
    ...(input.signal ? { signal: input.signal } : {}),
  });
  return { buildId: r.build_id, template: r.template };
}

/** A build's status, error and log so far. */
export async function getTemplateBuild(buildId: string, opts: ConnectionOptions = {}): Promise<TemplateBuildInfo> {
  const j = await new ApiClient(opts).json<BuildJson>('GET', `/v1/templates/builds/${encodeURIComponent(buildId)}`);
  return buildInfo(j);
}

/** The team's builds, newest first (without their logs; `getTemplateBuild` has them). */
export async function listTemplateBuilds(
  opts: ConnectionOptions & { template?: string; limit?: number } = {},
): Promise<TemplateBuildInfo[]> {
  const r = await new ApiClient(opts).json<{ builds: BuildJson[] }>('GET', '/v1/templates/builds', {
    query: { template: opts.template, limit: opts.limit },
  });
  return r.builds.map(buildInfo);
}

/**
 * Deletes build layers (the build cache) that no template is built on and no capsule runs from;
 * the next build of the same steps runs them again.
 */
export async function pruneTemplateBuildCache(
  opts: ConnectionOptions = {},
): Promise<{ deleted: string[]; kept: { name: string; reason: string }[] }> {
  return new ApiClient(opts).json('DELETE', '/v1/templates/builds/cache', { timeoutMs: opts.requestTimeoutMs ?? 0 });
}

/** Calls `onLog` with the build's log as it is written; resolves when the build has ended. */
export async function followTemplateBuildLogs(
  buildId: string,
  onLog: (text: string) => void,
  opts: ConnectionOptions & { signal?: AbortSignal } = {},
): Promise<void> {
  const res = await new ApiClient(opts).fetch('GET', `/v1/templates/builds/${encodeURIComponent(buildId)}/logs`, {
    headers: { accept: 'text/plain' },
    timeoutMs: 0,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (!res.body) {
    onLog(await res.text());
    return;
  }
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const text = decoder.decode(value, { stream: true });
    if (text) onLog(text);
  }
  const rest = decoder.decode();
  if (rest) onLog(rest);
}

/**
 * Builds a template and waits for it: streams the log to `onLog`, returns the finished build, and
 * throws TemplateBuildError when a step failed (bad input is rejected before the build starts,
 * as InvalidArgumentError naming the Dockerfile line).
 */
export async function buildTemplate(opts: BuildTemplateOptions): Promise<TemplateBuildInfo> {
  const { buildId } = await startTemplateBuild(opts);
  await followTemplateBuildLogs(buildId, opts.onLog ?? (() => undefined), opts);
  const build = await getTemplateBuild(buildId, opts);
  if (build.status === 'error') throw new TemplateBuildError(build);
  return build;
}
