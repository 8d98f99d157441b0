// Registry credentials from a file in Docker's config.json shape (`{"auths": {"<host>": {"auth":
// base64("user:pass")}}}`, or `username`/`password`), named by WRENN_REGISTRY_AUTH_FILE, so an
// operator can give the host agent pull access without putting secrets in each request.
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@wrenn/protocol';
import { DOCKER_HUB } from './image-ref.js';
import type { RegistryCredentials } from './registry-client.js';

const HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io', DOCKER_HUB];

/** The registry host a config.json key names (keys may be URLs). */
function hostOf(key: string): string {
  if (HUB_KEYS.includes(key)) return DOCKER_HUB;
  try {
    const u = new URL(key.includes('://') ? key : `https://${key}`);
    return HUB_KEYS.includes(u.host) ? DOCKER_HUB : u.host;
  } catch {
    return key;
  }
}

export function readRegistryAuthFile(file: string): Record<string, RegistryCredentials> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`registry auth file ${file}: ${(err as Error).message}`);
  }
  const auths = (doc as { auths?: unknown })?.auths;
  if (!auths || typeof auths !== 'object')
    throw new InvalidArgumentError(`registry auth file ${file} has no "auths" object`);
  const out: Record<string, RegistryCredentials> = {};
  for (const [key, v] of Object.entries(
    auths as Record<string, { auth?: unknown; username?: unknown; password?: unknown }>,
  )) {
    let username = typeof v?.username === 'string' ? v.username : undefined;
    let password = typeof v?.password === 'string' ? v.password : undefined;
    if (typeof v?.auth === 'string' && v.auth) {
      const plain = Buffer.from(v.auth, 'base64').toString('utf8');
      const colon = plain.indexOf(':');
      if (colon <= 0)
        throw new InvalidArgumentError(`registry auth file ${file}: the auth of ${key} is not base64 user:password`);
      username = plain.slice(0, colon);
      password = plain.slice(colon + 1);
    }
    if (username === undefined || password === undefined)
      throw new InvalidArgumentError(`registry auth file ${file}: ${key} needs auth or username and password`);
    out[hostOf(key)] = { username, password };
  }
  return out;
}
