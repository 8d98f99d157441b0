// What a container image's root filesystem gets before capsules start from it, written (as host
// root) into the image template's own top layer: real directories and files where the namespace
// runtime mounts (an image's layers are untrusted: a symlink at /etc or /dev would point those
// mounts at the host's paths, so symlinks there are replaced) and the `user` account capsules run
// commands as by default, when the image has none.
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GUEST_DIR } from '../runtimes/namespace/node-runtime.js';
import { USER_UID } from './skeleton.js';

/** Directories the runtime mounts on or in (nsinit.c: /dev, /proc, /sys, the runtime's dir, /etc files). */
const MOUNT_DIRS: [string, number][] = [
  ['dev', 0o755],
  ['proc', 0o555],
  ['sys', 0o555],
  ['etc', 0o755],
  ['tmp', 0o1777],
  ['run', 0o755],
  ['root', 0o700],
  [GUEST_DIR.slice(1).split('/')[0] ?? 'opt', 0o755],
];
/** Files the runtime binds the capsule's own copies over. */
const MOUNT_FILES = ['etc/hosts', 'etc/hostname', 'etc/resolv.conf'];

export interface ImageRootReport {
  /** Paths that were symlinks (or of the wrong type) and were replaced. */
  replaced: string[];
  /** The account added for the default user, if the image had no `user`. */
  addedUser?: { uid: number; gid: number };
}

async function kindOf(path: string): Promise<'missing' | 'dir' | 'file' | 'other'> {
  try {
    const st = await lstat(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
}

async function ensureDir(root: string, rel: string, mode: number, report: ImageRootReport): Promise<void> {
  const path = join(root, rel);
  const kind = await kindOf(path);
  if (kind === 'dir') return;
  if (kind !== 'missing') {
    await rm(path, { force: true });
    report.replaced.push(`/${rel}`);
  }
  await mkdir(path);
  await chmod(path, mode);
}

/** Creates (or replaces a non-file with) an empty regular file; never follows a symlink. */
async function ensureFile(root: string, rel: string, report: ImageRootReport): Promise<void> {
  const path = join(root, rel);
  const kind = await kindOf(path);
  if (kind === 'file') return;
  if (kind !== 'missing') {
    await rm(path, { recursive: true, force: true });
    report.replaced.push(`/${rel}`);
  }
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  await fh.close();
}

/** Appends text to a regular file of the root without following symlinks. */
async function appendTo(path: string, text: string): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
  try {
    await fh.appendFile(text);
  } finally {
    await fh.close();
  }
}

const ids = (text: string, field: number): Set<number> =>
  new Set(
    text
      .split('\n')
      .map((l) => Number(l.split(':')[field]))
      .filter(Number.isInteger),
  );

/** Adds `user` (uid = gid, the first free from 1000) when /etc/passwd has no such account. */
async function ensureDefaultUser(root: string, report: ImageRootReport): Promise<void> {
  const passwdPath = join(root, 'etc/passwd');
  const groupPath = join(root, 'etc/group');
  if ((await kindOf(passwdPath)) !== 'file') return; // no accounts in the image: commands run by uid
  const passwd = await readFile(passwdPath, 'utf8');
  if (passwd.split('\n').some((l) => l.startsWith('user:'))) return;
  const group = (await kindOf(groupPath)) === 'file' ? await readFile(groupPath, 'utf8') : '';
  const usedUids = ids(passwd, 2);
  const usedGids = ids(group, 2);
  let id = USER_UID;
  while (usedUids.has(id) || usedGids.has(id)) id++;
  const shell = (await kindOf(join(root, 'bin/bash'))) === 'missing' ? '/bin/sh' : '/bin/bash';
  await appendTo(
    passwdPath,
    `${passwd.endsWith('\n') || !passwd ? '' : '\n'}user:x:${id}:${id}:user:/home/user:${shell}\n`,
  );
  if (group !== '' || (await kindOf(groupPath)) === 'file')
    await appendTo(groupPath, `${group.endsWith('\n') || !group ? '' : '\n'}user:x:${id}:\n`);
  // A home unless /home is something else than a directory (then the account has none).
  const home = await kindOf(join(root, 'home'));
  if (home === 'missing') await mkdir(join(root, 'home'), { mode: 0o755 });
  if (home !== 'other' && home !== 'file' && (await kindOf(join(root, 'home/user'))) === 'missing') {
    await mkdir(join(root, 'home/user'), { mode: 0o755 });
    await chown(join(root, 'home/user'), id, id);
  }
  report.addedUser = { uid: id, gid: id };
}

/**
 * Prepares the merged root of an image (an overlay whose upper dir is the template's own layer).
 * Ids written here are plain (0 = root, the new account's); the caller shifts the layer after.
 */
export async function prepareImageRoot(root: string): Promise<ImageRootReport> {
  const report: ImageRootReport = { replaced: [] };
  for (const [rel, mode] of MOUNT_DIRS) await ensureDir(root, rel, mode, report);
  // Wrenn's own directory starts empty whatever the image put there (a VM disk copies node and
  // envd into it from the host: nothing of the image may redirect those writes).
  const guest = GUEST_DIR.slice(1);
  if ((await kindOf(join(root, guest))) !== 'missing') {
    await rm(join(root, guest), { recursive: true, force: true });
    report.replaced.push(GUEST_DIR);
  }
  await mkdir(join(root, guest), { mode: 0o755 });
  for (const rel of MOUNT_FILES) await ensureFile(root, rel, report);
  await ensureDefaultUser(root, report);
  return report;
}
