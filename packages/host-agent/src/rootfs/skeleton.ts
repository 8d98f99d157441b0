// Files and directories every Wrenn base layer has: FHS directories, /tmp 1777, the mount points
// the namespace runtime uses (/proc, /sys, /dev, /opt/wrenn) and a `user` account (uid 1000).
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const USER_UID = 1000;
const DIRS: [string, number][] = [
  ['bin', 0o755],
  ['sbin', 0o755],
  ['usr/bin', 0o755],
  ['usr/sbin', 0o755],
  ['usr/local/bin', 0o755],
  ['etc', 0o755],
  ['root', 0o700],
  ['home/user', 0o755],
  ['tmp', 0o1777],
  ['var/tmp', 0o1777],
  ['var/log', 0o755],
  ['run', 0o755],
  ['proc', 0o555],
  ['sys', 0o555],
  ['dev', 0o755],
  ['mnt', 0o755],
  ['opt/wrenn', 0o755],
];

export async function makeSkeleton(rootfs: string): Promise<void> {
  for (const [dir, mode] of DIRS) {
    await mkdir(join(rootfs, dir), { recursive: true });
    await chmod(join(rootfs, dir), mode);
  }
  await chown(join(rootfs, 'home/user'), USER_UID, USER_UID);
  const etc = (name: string, text: string, mode = 0o644) => writeFile(join(rootfs, 'etc', name), text, { mode });
  await etc(
    'passwd',
    'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await etc('group', 'root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n');
  await etc('shadow', 'root:*:19000:0:99999:7:::\nuser:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', 0o640);
  await etc('hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  // Mount points for the per-capsule files the runtime binds over them.
  await etc('hostname', 'localhost\n');
  await etc('resolv.conf', '');
  await etc('profile', 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
}
