// Container images: pullImage pulls an image for the team ahead of a capsule create with `image`
// (the create then finds every layer in the host's cache), reporting each progress line (the
// manifest, every layer cached or downloaded, MiB as they arrive) while it runs.
import type { RegistryCredentials } from '@wrenn/protocol';
import type { ConnectionOptions } from './config.js';
import { WrennError } from './errors.js';
import { ApiClient } from './http.js';

export interface PullImageOptions extends ConnectionOptions {
  registryCredentials?: RegistryCredentials;
  /** Each progress line as the pull goes. */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

/** Pulls `image`; resolves with the team template it became (hidden, `img-…`), throws when the pull failed. */
export async function pullImage(image: string, opts: PullImageOptions = {}): Promise<{ template: string }> {
  const res = await new ApiClient(opts).fetch('POST', '/v1/images/pull', {
    json: { image, ...(opts.registryCredentials ? { registry_credentials: opts.registryCredentials } : {}) },
    timeoutMs: 0,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let template = '';
  let failure = '';
  const onLine = (line: string) => {
    if (line.startsWith('ERROR: ')) failure = line.slice('ERROR: '.length);
    else if (line.startsWith('template ')) template = line.slice('template '.length);
    else opts.onProgress?.(line);
  };
  const decoder = new TextDecoder();
  let partial = '';
  const reader = res.body?.getReader();
  for (;;) {
    const chunk = reader ? await reader.read() : { done: true as const, value: undefined };
    if (chunk.done) break;
    const lines = (partial + decoder.decode(chunk.value, { stream: true })).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  }
  const rest = partial + decoder.decode();
  if (rest) onLine(rest);
  if (failure) throw new WrennError(`pulling ${image} failed: ${failure}`, { code: 'image_pull_failed' });
  if (!template) throw new WrennError(`pulling ${image} ended without its result`, { code: 'image_pull_failed' });
  return { template };
}
