// Test helpers for OCI pulls: Debian's docker-registry started on a loopback port (plain, or with
// basic auth), and images the test builds itself (tar layers, gzip/zstd, configs, manifests,
// indexes) pushed to it with the distribution API. Nothing here talks to any other address.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const haveRegistry = existsSync(REGISTRY_BIN);
/** The skip reason of a test that needs the registry (false when it is installed). */
export const registrySkip: string | false = haveRegistry
  ? false
  : 'Debian docker-registry is not installed (scripts/setup.mjs installs it)';

export interface TestRegistry {
  /** host:port on 127.0.0.1 */
  host: string;
  auth?: { username: string; password: string };
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export async function startRegistry(auth?: { username: string; password: string }): Promise<TestRegistry> {
  const dir = mkdtempSync('/tmp/wrenn-oci-registry-');
  const port = await freePort();
  let authYaml = '';
  if (auth) {
    const hash = execFileSync('python3', [
      '-W',
      'ignore',
      '-c',
      'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))',
      auth.password,
    ])
      .toString()
      .trim();
    writeFileSync(join(dir, 'htpasswd'), `${auth.username}:${hash}\n`);
    authYaml = `auth:\n  htpasswd:\n    realm: wrenn-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${authYaml}`,
  );
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    if (i > 100 || child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await sleep(100);
  }
  return auth ? { host, auth, stop } : { host, stop };
}

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One tar entry: a file (content), directory, symlink/hard link (linkname), or device. */
export interface TarEntry {
  name: string;
  type?: 'file' | 'link' | 'symlink' | 'directory' | 'block-device' | 'character-device' | 'fifo';
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  content?: string | Buffer;
}

/** tar-stream's pack stream through the API its majors 2 and 3 share. */
interface TarPack {
  entry(header: object, content: string | Buffer, cb: (err?: Error | null) => void): unknown;
  entry(header: object, cb: (err?: Error | null) => void): unknown;
  finalize(): void;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
}

export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const p = pack() as unknown as TarPack;
  const chunks: Buffer[] = [];
  p.on('data', (c) => chunks.push(c));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const { content, ...h } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (content !== undefined) p.entry({ type: 'file', mode: 0o644, uid: 0, gid: 0, ...h }, content, cb);
      else p.entry({ uid: 0, gid: 0, mode: h.type === 'directory' ? 0o755 : 0o644, ...h }, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function gzip(b: Buffer): Buffer {
  return gzipSync(b);
}

export function zstd(b: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c'], { input: b, maxBuffer: 1 << 30 });
}

function authHeader(reg: TestRegistry): Record<string, string> {
  return reg.auth
    ? { Authorization: `Basic ${Buffer.from(`${reg.auth.username}:${reg.auth.password}`).toString('base64')}` }
    : {};
}

export async function pushBlob(reg: TestRegistry, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const start = await fetch(`http://${reg.host}/v2/${repo}/blobs/uploads/`, {
    method: 'POST',
    headers: authHeader(reg),
  });
  if (start.status !== 202) throw new Error(`upload start: ${start.status} ${await start.text()}`);
  const loc = new URL(start.headers.get('location') ?? '', `http://${reg.host}`);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, {
    method: 'PUT',
    body: blob,
    headers: { ...authHeader(reg), 'Content-Type': 'application/octet-stream' },
  });
  if (put.status !== 201) throw new Error(`upload: ${put.status} ${await put.text()}`);
  return digest;
}

export async function pushManifest(
  reg: TestRegistry,
  repo: string,
  ref: string,
  doc: object,
  mediaType: string,
): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(JSON.stringify(doc));
  const res = await fetch(`http://${reg.host}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    body,
    headers: { ...authHeader(reg), 'Content-Type': mediaType },
  });
  if (res.status !== 201) throw new Error(`manifest ${ref}: ${res.status} ${await res.text()}`);
  return { digest: sha256(body), size: body.length };
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

export interface TestLayer {
  blob: Buffer;
  mediaType: string;
}

/** Pushes config + layers + manifest; returns the manifest's digest and size. */
export async function pushImage(
  reg: TestRegistry,
  repo: string,
  tag: string | undefined,
  layers: TestLayer[],
  config: object,
  manifestType = OCI_MANIFEST,
): Promise<{ digest: string; size: number }> {
  const configBlob = Buffer.from(JSON.stringify(config));
  await pushBlob(reg, repo, configBlob);
  for (const l of layers) await pushBlob(reg, repo, l.blob);
  const docker = manifestType === DOCKER_MANIFEST;
  const doc = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: {
      mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
      digest: sha256(configBlob),
      size: configBlob.length,
    },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: sha256(l.blob), size: l.blob.length })),
  };
  const body = Buffer.from(JSON.stringify(doc));
  return pushManifest(reg, repo, tag ?? sha256(body), doc, manifestType);
}
