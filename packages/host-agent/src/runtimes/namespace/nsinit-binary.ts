// Locates (and on first use compiles) wrenn-nsinit, the small C helper in nsinit.c that does the
// namespace, mount and cgroup set-up Node cannot, and installs the capsule seccomp filter
// (seccomp-policy.c, with libseccomp). Built with the host's gcc into the package's dist/ next to
// this module; rebuilt when any of its source files is newer. A prebuilt binary can be named with
// WRENN_NSINIT.
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
const SECCOMP_POLICY = join(packageRoot, 'src/runtimes/namespace/seccomp-policy.c');
/** Every file the binary is made from: a change to any of them rebuilds it. */
export const NSINIT_SOURCES = [NSINIT_SOURCE, SECCOMP_POLICY, SECCOMP_POLICY.replace(/\.c$/, '.h')];
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
  const newestSource = Math.max(...NSINIT_SOURCES.map((f) => (existsSync(f) ? statSync(f).mtimeMs : Infinity)));
  if (existsSync(NSINIT_BINARY) && statSync(NSINIT_BINARY).mtimeMs >= newestSource) return NSINIT_BINARY;
  await buildNsinit();
  return NSINIT_BINARY;
}

/** Compiles nsinit.c with seccomp-policy.c (under a second); used by setup and on first use. */
export async function buildNsinit(): Promise<string> {
  const tmp = `${NSINIT_BINARY}.${process.pid}.tmp`;
  await run('mkdir', ['-p', dirname(NSINIT_BINARY)]);
  const sources = NSINIT_SOURCES.filter((f) => f.endsWith('.c'));
  await run('gcc', ['-O2', '-Wall', '-Wno-format-truncation', '-o', tmp, ...sources, '-lseccomp']).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(
        `compiling ${sources.join(' ')} failed (are gcc and libseccomp-dev installed? apt-get install gcc libseccomp-dev): ${err.stderr || err.message}`,
      );
    },
  );
  await rename(tmp, NSINIT_BINARY); // atomic: a concurrent runner never sees half a binary
  return NSINIT_BINARY;
}
