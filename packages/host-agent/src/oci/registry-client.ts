// Speaks the OCI distribution protocol to one registry: GET manifests and blobs, answering the
// WWW-Authenticate challenge with basic auth or an (anonymous or credentialed) bearer token.
// Docker Hub goes through WRENN_REGISTRY_MIRROR when set; loopback registries use plain HTTP.
import { createHash } from 'node:crypto';
import { InvalidArgumentError, NotFoundError, UnauthenticatedError, UnavailableError } from '@wrenn/protocol';
import { DOCKER_HUB, type ImageReference } from './image-ref.js';
import { readRegistryAuthFile } from './registry-auth-file.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Credentials by registry host[:port] (docker.io for Docker Hub); they win over the file's. */
  credentials?: Record<string, RegistryCredentials>;
  /** A Docker config.json-shaped credentials file (default: WRENN_REGISTRY_AUTH_FILE). */
  authFile?: string;
  /** Base URL Docker Hub requests go to instead (default: WRENN_REGISTRY_MIRROR). */
  mirror?: string;
  /** Extra registries reached over plain HTTP besides loopback ones. */
  plainHttp?: string[];
}

const MAX_JSON_BYTES = 4 << 20;

export function registryBaseUrl(registry: string, opts: RegistryClientOptions): string {
  const mirror = opts.mirror ?? process.env.WRENN_REGISTRY_MIRROR;
  if (registry === DOCKER_HUB) {
    if (mirror) {
      let u: URL;
      try {
        u = new URL(mirror);
      } catch {
        throw new InvalidArgumentError(`WRENN_REGISTRY_MIRROR ${JSON.stringify(mirror)} is not a URL`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:')
        throw new InvalidArgumentError('WRENN_REGISTRY_MIRROR must be an http:// or https:// URL');
      return u.origin;
    }
    return 'https://registry-1.docker.io';
  }
  const host = registry.replace(/:\d+$/, '');
  const loopback = host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host);
  return `${loopback || opts.plainHttp?.includes(registry) ? 'http' : 'https'}://${registry}`;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or Basic) into its scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    params[(p[1] ?? '').toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

export class RegistryClient {
  private readonly base: string;
  private readonly creds: RegistryCredentials | undefined;
  private authorization: string | undefined;

  constructor(
    private readonly ref: ImageReference,
    opts: RegistryClientOptions = {},
  ) {
    this.base = registryBaseUrl(ref.registry, opts);
    const file = opts.authFile ?? process.env.WRENN_REGISTRY_AUTH_FILE;
    this.creds = opts.credentials?.[ref.registry] ?? (file ? readRegistryAuthFile(file)[ref.registry] : undefined);
  }

  /** Fetches a manifest (or index) by tag or digest; returns its bytes, media type and digest. */
  async manifest(reference: string, accept: string[]): Promise<{ body: Buffer; mediaType: string; digest: string }> {
    const res = await this.get(`manifests/${reference}`, { Accept: accept.join(', ') }, `manifest ${reference}`);
    const body = await readLimited(res, MAX_JSON_BYTES, `manifest ${reference}`);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference)
      throw new InvalidArgumentError(`registry sent manifest ${digest} for ${reference}: digest mismatch`);
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    return { body, mediaType, digest };
  }

  /** Fetches a small JSON blob (the image config), digest verified. */
  async jsonBlob(digest: string): Promise<Buffer> {
    const res = await this.blob(digest);
    const body = await readLimited(res, MAX_JSON_BYTES, `blob ${digest}`);
    const got = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (got !== digest) throw new InvalidArgumentError(`registry sent blob ${got} for ${digest}: digest mismatch`);
    return body;
  }

  /** Starts a blob download; the caller verifies the digest while streaming. */
  blob(digest: string): Promise<Response> {
    return this.get(`blobs/${digest}`, {}, `blob ${digest}`);
  }

  private async get(path: string, headers: Record<string, string>, what: string): Promise<Response> {
    const url = `${this.base}/v2/${this.ref.repository}/${path}`;
    let res = await this.send(url, headers);
    if (res.status === 401) {
      await res.body?.cancel();
      await this.answerChallenge(res.headers.get('www-authenticate') ?? '');
      res = await this.send(url, headers);
      if (res.status === 401) {
        await res.body?.cancel();
        throw new UnauthenticatedError(
          `registry ${this.ref.registry} refused ${this.creds ? 'the credentials' : 'anonymous access'} for ${this.ref.repository} (${what})`,
        );
      }
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new NotFoundError(`image ${this.ref.registry}/${this.ref.repository}: ${what} not found`);
    }
    if (res.status === 403) {
      await res.body?.cancel();
      throw new UnauthenticatedError(`registry ${this.ref.registry} denied access to ${this.ref.repository} (${what})`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new UnavailableError(`registry ${this.ref.registry} answered ${res.status} for ${what}`);
    }
    return res;
  }

  private async send(url: string, headers: Record<string, string>): Promise<Response> {
    try {
      return await fetch(url, {
        headers: this.authorization ? { ...headers, Authorization: this.authorization } : headers,
        redirect: 'follow',
      });
    } catch (err) {
      throw new UnavailableError(`registry ${this.ref.registry} unreachable at ${url}: ${(err as Error).message}`);
    }
  }

  private basic(): string | undefined {
    if (!this.creds) return undefined;
    return `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
  }

  private async answerChallenge(header: string): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    if (scheme === 'basic') {
      const basic = this.basic();
      if (!basic) throw new UnauthenticatedError(`registry ${this.ref.registry} needs credentials (basic auth)`);
      this.authorization = basic;
      return;
    }
    if (scheme !== 'bearer' || !params.realm)
      throw new UnauthenticatedError(`registry ${this.ref.registry} sent an unusable challenge: ${header || '(none)'}`);
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${this.ref.repository}:pull`);
    const basic = this.basic();
    let res: Response;
    try {
      res = await fetch(realm, basic ? { headers: { Authorization: basic } } : {});
    } catch (err) {
      throw new UnavailableError(`token service ${realm.origin} unreachable: ${(err as Error).message}`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new UnauthenticatedError(`token service ${realm.origin} refused a pull token (${res.status})`);
    }
    const body = JSON.parse((await readLimited(res, MAX_JSON_BYTES, 'token')).toString('utf8')) as {
      token?: string;
      access_token?: string;
    };
    const token = body.token ?? body.access_token;
    if (!token) throw new UnauthenticatedError(`token service ${realm.origin} sent no token`);
    this.authorization = `Bearer ${token}`;
  }
}

async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) throw new InvalidArgumentError(`${what} is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
