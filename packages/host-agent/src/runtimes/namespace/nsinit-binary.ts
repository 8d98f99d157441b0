// Locates (and on first use compiles) wrenn-nsinit, the small C helper in nsinit.c that does the
// namespace, mount and cgroup set-up Node cannot. Built with the host's gcc into the package's
// dist/ next to this module; rebuilt when the source is newer. A prebuilt binary can be named
// with WRENN_NSINIT.
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
// dist/src/runtimes/namespace -> package root
const packageRoot = resolve(here, '../../../..');
export const NSINIT_SOURCE = join(packageRoot, 'src/runtimes/namespace/nsinit.c');
export const NSINIT_BINARY = join(packageRoot, 'dist/native/wrenn-nsinit');

let cached: Promise<string> | undefined;

export function nsinitPath(): Promise<string> {
  cached ??= locate().catch((err) => {
    cached = undefined;
    throw err;
  });
  return cached;
}

async function locate(): Promise<string> {
  const given = process.env.WRENN_NSINIT;
  if (given) {
    if (!existsSync(given)) throw new Error(`WRENN_NSINIT=${given} does not exist`);
    return given;
  }
  if (!existsSync(NSINIT_SOURCE)) {
    if (existsSync(NSINIT_BINARY)) return NSINIT_BINARY;
    throw new Error(`neither ${NSINIT_BINARY} nor its source ${NSINIT_SOURCE} exists: reinstall Wrenn`);
  }
  if (existsSync(NSINIT_BINARY) && statSync(NSINIT_BINARY).mtimeMs >= statSync(NSINIT_SOURCE).mtimeMs)
    return NSINIT_BINARY;
  await buildNsinit();
  return NSINIT_BINARY;
}

/** Compiles nsinit.c (about a quarter second); used by setup and on first use. */
export async function buildNsinit(): Promise<string> {
  const tmp = `${NSINIT_BINARY}.${process.pid}.tmp`;
  await run('mkdir', ['-p', dirname(NSINIT_BINARY)]);
  await run('gcc', ['-O2', '-Wall', '-Wno-format-truncation', '-o', tmp, NSINIT_SOURCE]).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(
        `compiling ${NSINIT_SOURCE} failed (is gcc installed? apt-get install gcc): ${err.stderr || err.message}`,
      );
    },
  );
  await rename(tmp, NSINIT_BINARY); // atomic: a concurrent runner never sees half a binary
  return NSINIT_BINARY;
}
