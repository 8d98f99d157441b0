// node:crypto, loaded on first use: it costs ~0.8 MB of memory and start-up time, and envd needs it
// only once an access token is set, a signed URL is checked or a watcher is created.
import type crypto from 'node:crypto';
import { createRequire } from 'node:module';

let loaded: typeof crypto | undefined;

export function nodeCrypto(): typeof crypto {
  loaded ??= createRequire(import.meta.url)('node:crypto') as typeof crypto;
  return loaded;
}
