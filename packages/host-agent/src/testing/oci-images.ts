// Container images the tests build themselves (no internet): an Alpine-like musl root filesystem
// (busybox-static with its applets, musl's loader, a program linked against musl with Debian's
// musl-gcc) pushed to the test's own registry with a config carrying ENV/WORKDIR/USER/CMD.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzip, pushImage, type TarEntry, type TestRegistry, tarOf } from './oci-registry.js';

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1';
export const haveMuslGcc = existsSync('/usr/bin/musl-gcc') && existsSync(MUSL_LOADER);

/** A C program compiled with musl-gcc (dynamically linked against musl). */
export function muslProgram(source: string): Buffer {
  const dir = mkdtempSync('/tmp/wrenn-musl-');
  try {
    writeFileSync(join(dir, 'p.c'), source);
    execFileSync('musl-gcc', ['-o', join(dir, 'p'), join(dir, 'p.c')]);
    return readFileSync(join(dir, 'p'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const muslHello = () => muslProgram('#include <stdio.h>\nint main(void){puts("hello from musl");return 0;}\n');

/** busybox-static and a symlink per applet, an /etc with root and `app` (uid 1000), musl's loader. */
export function muslRootEntries(): TarEntry[] {
  const entries: TarEntry[] = [
    { name: 'bin', type: 'directory' },
    { name: 'usr', type: 'directory' },
    { name: 'usr/bin', type: 'directory' },
    { name: 'sbin', type: 'directory' },
    { name: 'usr/sbin', type: 'directory' },
    { name: 'lib', type: 'directory' },
    { name: 'etc', type: 'directory' },
    { name: 'home', type: 'directory' },
    { name: 'home/app', type: 'directory', uid: 1000, gid: 1000 },
    { name: 'bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' },
    { name: 'etc/group', content: 'root:x:0:\napp:x:1000:\n' },
    { name: 'etc/os-release', content: 'ID=wrenn-test-musl\n' },
    { name: 'etc/motd', content: 'removed by the second layer\n' },
  ];
  const applets = execFileSync('/bin/busybox', ['--list-full']).toString().split('\n').filter(Boolean);
  for (const rel of applets)
    if (rel !== 'bin/busybox') entries.push({ name: rel, type: 'symlink', linkname: '/bin/busybox' });
  if (haveMuslGcc) {
    entries.push({ name: MUSL_LOADER.slice(1), content: readFileSync(MUSL_LOADER), mode: 0o755 });
    entries.push({ name: 'usr/bin/hello-musl', content: muslHello(), mode: 0o755 });
  }
  return entries;
}

export const MUSL_IMAGE_CONFIG = {
  architecture: 'amd64',
  os: 'linux',
  config: {
    Env: ['PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', 'GREETING=hello image'],
    WorkingDir: '/app',
    User: 'app',
    Cmd: ['/bin/sh', '-c', 'echo started > /tmp/started; exec sleep 3600'],
  },
  rootfs: { type: 'layers', diff_ids: [] },
};

let baseLayer: Buffer | undefined;
let topLayer: Buffer | undefined;

/**
 * Pushes the musl image as repo:tag: the root layer, then a layer adding /app (owned by app),
 * removing /etc/motd (whiteout) and anything in `extra`; `run` replaces config fields (Entrypoint,
 * Cmd). Returns the manifest digest.
 */
export async function pushMuslImage(
  reg: TestRegistry,
  repo: string,
  tag: string,
  extra: TarEntry[] = [],
  run: { Entrypoint?: string[]; Cmd?: string[] } = {},
): Promise<{ digest: string }> {
  // Built once per process: the same image pushed twice has the same digests.
  baseLayer ??= gzip(await tarOf(muslRootEntries()));
  const base = baseLayer;
  const top =
    (extra.length === 0 ? topLayer : undefined) ??
    gzip(
      await tarOf([
        { name: 'app', type: 'directory', uid: 1000, gid: 1000 },
        { name: 'app/hello.txt', content: 'hi from the image\n', uid: 1000, gid: 1000 },
        { name: 'etc/.wh.motd', content: '' },
        ...extra,
      ]),
    );
  if (extra.length === 0) topLayer = top;
  return pushImage(
    reg,
    repo,
    tag,
    [
      { blob: base, mediaType: GZ },
      { blob: top, mediaType: GZ },
    ],
    { ...MUSL_IMAGE_CONFIG, config: { ...MUSL_IMAGE_CONFIG.config, ...run } },
  );
}
