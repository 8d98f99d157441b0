// Container images as template bases: the request fields every API shares (an image reference and
// the credentials for its registry) and their rules. The full grammar of a reference is the host
// agent's to check (it parses it to pull); these bounds keep junk out before any host is asked.

/** Longest image reference accepted (registry/repository:tag@sha256:digest). */
export const IMAGE_REFERENCE_MAX_LENGTH = 512;
/** Longest registry user name or password/token accepted. */
export const REGISTRY_CREDENTIAL_MAX_LENGTH = 4096;

/** Basic-auth (or token) credentials for the registry an image is pulled from. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

export function imageReferenceProblem(image: unknown, field = 'image'): string | undefined {
  if (image === undefined) return undefined;
  if (typeof image !== 'string' || image.length === 0) return `${field} must be a non-empty image reference`;
  if (image.length > IMAGE_REFERENCE_MAX_LENGTH)
    return `${field} is ${image.length} characters long; at most ${IMAGE_REFERENCE_MAX_LENGTH}`;
  if (/[\s\0]/.test(image)) return `${field} ${JSON.stringify(image)} contains whitespace`;
  return undefined;
}

export function registryCredentialsProblem(c: unknown, field = 'registry_credentials'): string | undefined {
  if (c === undefined || c === null) return undefined;
  if (typeof c !== 'object' || Array.isArray(c)) return `${field} must be an object with username and password`;
  const { username, password } = c as Record<string, unknown>;
  for (const [k, v] of [
    ['username', username],
    ['password', password],
  ] as const) {
    if (typeof v !== 'string' || v.length === 0) return `${field}.${k} must be a non-empty string`;
    if (v.length > REGISTRY_CREDENTIAL_MAX_LENGTH)
      return `${field}.${k} is longer than ${REGISTRY_CREDENTIAL_MAX_LENGTH} characters`;
  }
  return undefined;
}
