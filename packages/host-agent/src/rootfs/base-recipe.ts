// `base`: Debian bookworm minbase from debootstrap, plus python3 (also as `python`, which E2B's
// templates and its SDK tests call), pip, curl, git, ca-certificates, sudo, procps and a `user` account with passwordless sudo. Needs the host's Debian mirror; takes
// a minute or more, so the store builds it once and caches it.
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { findDebianMirror } from './debian-mirror.js';
import type { ProgressFn, TemplateRecipe } from './recipe.js';

const run = promisify(execFile);
const SUITE = 'bookworm';
const PACKAGES = ['python3', 'python-is-python3', 'python3-pip', 'curl', 'git', 'ca-certificates', 'sudo', 'procps'];
/** Bump when a build step below changes (what PACKAGES and SUITE do not already say). */
const REVISION = 1;

function debootstrap(args: string[], onProgress: ProgressFn): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('debootstrap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (/^[IWE]:/.test(line)) onProgress(`base: ${line}`);
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.on('error', (err) =>
      reject(new Error(`could not run debootstrap (${err.message}): install it with apt-get install debootstrap`)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`debootstrap exited with code ${code}; last output:\n${tail.join('\n')}`));
    });
  });
}

async function inChroot(rootfs: string, argv: string[]): Promise<void> {
  await run('chroot', [rootfs, ...argv], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } }).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(`chroot ${argv.join(' ')} failed: ${err.stderr || err.message}`);
    },
  );
}

export const baseRecipe: TemplateRecipe = {
  description: `Debian ${SUITE} minbase with ${PACKAGES.join(', ')} and a sudo-enabled user`,
  inputs: { suite: SUITE, packages: PACKAGES, revision: REVISION },
  async build(rootfs, onProgress) {
    const mirror = await findDebianMirror(SUITE);
    onProgress(`base: debootstrap ${SUITE} (minbase + ${PACKAGES.join(',')}); this takes a minute or more`);
    await debootstrap(['--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, rootfs, mirror], onProgress);
    onProgress('base: creating the user account');
    await inChroot(rootfs, [
      'useradd',
      '--create-home',
      '--uid',
      '1000',
      '--user-group',
      '--shell',
      '/bin/bash',
      'user',
    ]);
    await writeFile(join(rootfs, 'etc/sudoers.d/wrenn-user'), 'user ALL=(ALL:ALL) NOPASSWD:ALL\n', { mode: 0o440 });
    await mkdir(join(rootfs, 'opt/wrenn'), { recursive: true });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    onProgress('base: removing package caches');
    await rm(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
    await mkdir(join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
    for (const f of await readdir(join(rootfs, 'var/lib/apt/lists')).catch(() => [] as string[])) {
      if (f !== 'partial' && f !== 'lock') await rm(join(rootfs, 'var/lib/apt/lists', f), { force: true });
    }
  },
};
