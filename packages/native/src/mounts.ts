// Loop mounts and unmounts by system call (cpp/mounts.cc): no util-linux scan of every loop
// device or parse of the whole mount table, so their cost does not grow with the host's capsules.
import { native } from './binding.js';

/** mount(2) flags by their mount(8) option names. */
const FLAGS: Record<string, number> = {
  ro: 1,
  nosuid: 2,
  nodev: 4,
  noexec: 8,
  noatime: 1024,
  nodiratime: 2048,
  relatime: 1 << 21,
};
const MNT_DETACH = 2;

/** `options` as mount(8) takes them ("nodev,discard"): flag names become flags, the rest the file system's data. */
export function splitMountOptions(options: string): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const o of options.split(',').filter(Boolean)) {
    if (o === 'loop') continue;
    if (FLAGS[o] !== undefined) flags |= FLAGS[o];
    else data.push(o);
  }
  return { flags, data: data.join(',') };
}

/** The addon, checked to be built from sources that have the mount calls. */
function binding() {
  const b = native();
  if (typeof b.loopMount !== 'function') {
    throw new Error('the native addon predates loopMount/unmount: rebuild it (node packages/native/build.mjs)');
  }
  return b;
}

/** Mounts the file system in `image` at `target` through a free loop device (freed again at unmount). Resolves with the device. */
export async function loopMount(image: string, target: string, fstype: string, options = ''): Promise<string> {
  const { flags, data } = splitMountOptions(options);
  return binding().loopMount(image, target, fstype, flags, data);
}

/**
 * Binds directory `source` at `target` (nosuid, nodev) seen through an idmap: `map` is one line of
 * a user namespace's uid/gid map, "<stored id> <shown id> <count>"; ids stored outside it show as
 * the overflow id and cannot be written. Rejects with the errno.
 */
export async function idmappedBind(source: string, target: string, map: string): Promise<void> {
  if (!/^\d+ \d+ \d+$/.test(map)) throw new Error(`idmap ${JSON.stringify(map)} is not "<stored> <shown> <count>"`);
  const b = binding();
  if (typeof b.idmappedBind !== 'function')
    throw new Error('the native addon predates idmappedBind: rebuild it (node packages/native/build.mjs)');
  return b.idmappedBind(source, target, map);
}

/** Unmounts `target` (umount2; `lazy`: MNT_DETACH). Rejects with the errno (EINVAL: not a mount point). */
export async function unmount(target: string, opts: { lazy?: boolean } = {}): Promise<void> {
  return binding().unmount(target, opts.lazy ? MNT_DETACH : 0);
}
