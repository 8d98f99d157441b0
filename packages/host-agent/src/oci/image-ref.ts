// Parses an image reference the way `docker pull` reads it: `name[:tag][@sha256:…]`, Docker Hub
// (`docker.io`, `library/` for one-word names) unless the first component looks like a host.
import { InvalidArgumentError } from '@wrenn/protocol';

export interface ImageReference {
  /** Host[:port] as written (docker.io for Docker Hub). */
  registry: string;
  /** Repository path, e.g. library/python. */
  repository: string;
  /** Tag, when no digest is given (default latest). */
  tag?: string;
  /** sha256:<64 hex>, when pinned. */
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function parseImageReference(input: string): ImageReference {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: ${why}`);
  };
  if (typeof input !== 'string' || input.length === 0 || input.length > 512) bad('give name[:tag][@sha256:digest]');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad('the digest must be sha256: and 64 lowercase hex digits');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag ${JSON.stringify(tag)} is not valid`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
    if (!/^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$/.test(registry))
      bad(`registry ${JSON.stringify(registry)} is not a host[:port]`);
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) bad('the name must be lowercase path components');
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const ref: ImageReference = { registry, repository: parts.join('/') };
  if (digest) ref.digest = digest;
  else ref.tag = tag ?? 'latest';
  if (digest && tag) ref.tag = tag;
  return ref;
}

/** The manifest reference to ask for: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

export function formatImageReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
