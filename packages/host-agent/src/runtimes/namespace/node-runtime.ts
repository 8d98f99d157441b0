// What to bind-mount read-only into every capsule so envd runs on ANY root filesystem (even one
// without glibc): this host's node binary, the shared libraries it links and the dynamic loader,
// under /opt/wrenn/runtime/{bin,lib}; and envd bundled into one file (with its native addons) at
// /opt/wrenn/envd — nothing else of the Wrenn install is visible inside a capsule.
// envd is started through the loader with --library-path, which (unlike LD_LIBRARY_PATH) is not
// inherited by the processes envd starts.
import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ENVD_NODE_FLAGS, ENVD_START } from '@wrenn/envd/host';

const run = promisify(execFile);

export const GUEST_DIR = '/opt/wrenn';
export const GUEST_RUNTIME = `${GUEST_DIR}/runtime`;
export const GUEST_APP = `${GUEST_DIR}/envd`;
/** envd's bundle inside the install (scripts/bundle-envd.mjs writes it at build time) and its start file. */
export const ENVD_BUNDLE_DIR = 'packages/envd/dist/bundle';
export const ENVD_BUNDLE = ENVD_START;

export interface Bind {
  src: string;
  dst: string;
}

export interface NodeRuntimeLayout {
  binds: Bind[];
  /** argv prefix that runs node inside the capsule: [loader, --library-path, lib, node]. */
  nodeArgv: string[];
}

export const CLI_ENTRY = 'packages/cli/bin/wrenn.js';

/**
 * The Wrenn install root (the directory holding packages/cli/bin/wrenn.js and node_modules):
 * the nearest ancestor of this module that has the CLI entry.
 */
export function defaultAppDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, CLI_ENTRY))) return dir;
    const up = dirname(dir);
    if (up === dir) {
      throw new Error(
        `cannot find the Wrenn install (${CLI_ENTRY}) above ${fileURLToPath(import.meta.url)}: pass appDir to the namespace runtime`,
      );
    }
    dir = up;
  }
}

/** Parses `ldd` output into [soname, host path] pairs and the loader path. */
export function parseLdd(text: string): { libs: [string, string][]; loader: string } {
  const libs: [string, string][] = [];
  let loader = '';
  for (const line of text.split('\n').map((l) => l.trim())) {
    const m = /^(\S+) => (\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (m?.[1] && m[2]) {
      libs.push([m[1], m[2]]);
      continue;
    }
    const l = /^(\/\S*ld-linux\S*) \(0x[0-9a-f]+\)$/.exec(line);
    if (l?.[1]) loader = l[1];
  }
  if (!loader) throw new Error(`could not find the dynamic loader in ldd output:\n${text}`);
  return { libs, loader };
}

export async function resolveNodeRuntime(nodePath: string, appDir: string): Promise<NodeRuntimeLayout> {
  const node = realpathSync(nodePath);
  const { stdout } = await run('ldd', [node]).catch((err: Error) => {
    throw new Error(
      `ldd ${node} failed (${err.message}); the namespace runtime needs a dynamically linked node and ldd (libc-bin)`,
    );
  });
  const { libs, loader } = parseLdd(stdout);
  const loaderName = basename(loader);
  const binds: Bind[] = [
    { src: node, dst: `${GUEST_RUNTIME}/bin/node` },
    { src: realpathSync(loader), dst: `${GUEST_RUNTIME}/lib/${loaderName}` },
    ...libs.map(([soname, path]) => ({ src: realpathSync(path), dst: `${GUEST_RUNTIME}/lib/${soname}` })),
    { src: realpathSync(envdBundleDir(appDir)), dst: GUEST_APP },
  ];
  return {
    binds,
    nodeArgv: [
      `${GUEST_RUNTIME}/lib/${loaderName}`,
      '--library-path',
      `${GUEST_RUNTIME}/lib`,
      `${GUEST_RUNTIME}/bin/node`,
    ],
  };
}

export function envdBundleDir(appDir: string): string {
  const dir = join(appDir, ENVD_BUNDLE_DIR);
  if (!existsSync(join(dir, ENVD_BUNDLE))) {
    throw new Error(
      `envd's bundle ${join(dir, ENVD_BUNDLE)} is missing: run \`npm run build\` (it bundles envd for capsules)`,
    );
  }
  return dir;
}

export function envdScript(): string {
  return join(GUEST_APP, ENVD_BUNDLE);
}

/** Node flags for envd inside capsules (defined with the bundle: its code cache needs the same flags). */
export { ENVD_NODE_FLAGS };
