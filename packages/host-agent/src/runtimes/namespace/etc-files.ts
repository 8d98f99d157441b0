// The capsule's own /etc/hosts, /etc/hostname and /etc/resolv.conf: written by the host (the
// capsule's name and the name servers are the host's to say), kept on the capsule's disk beside the
// upper dir (so its writes count against its quota) or, without a disk, in its sandbox dir, and
// bind-mounted writable (as on Docker) so they never end up in the upper layer or a snapshot.
import { closeSync, constants, fchownSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hostNameServers } from '../../network/name-servers.js';
import { HOST_ID_BASE } from '../../rootfs/id-map.js';
import type { NamespaceState } from './namespace-runtime.js';
import { QuotaDisks } from './quota-disk.js';

/**
 * Writes the three files (synchronously: three small files on a local disk take microseconds, less
 * than a single trip through libuv's thread pool) and returns the binds that put them at /etc.
 * `dnsServers` default: the host's own, minus loopback ones.
 */
export function writeEtcFiles(state: NamespaceState, dnsServers?: string[]): { src: string; dst: string }[] {
  const dir = state.ownDisk ? QuotaDisks.etcDir(state.sandboxDir) : join(state.sandboxDir, 'etc');
  mkdirSync(dir, { recursive: true });
  const id = state.hostname ?? state.spec.id;
  const servers = dnsServers ?? hostNameServers();
  const files: [string, string][] = [
    ['hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${id}\n`],
    ['hostname', `${id}\n`],
    [
      'resolv.conf',
      servers.length
        ? servers.map((s) => `nameserver ${s}\n`).join('')
        : '# no DNS server configured for capsules on this host\n',
    ],
  ];
  return files.map(([name, text]) => {
    const src = join(dir, name);
    // Stored canonically like the upper layer; bound through the same idmap (--bind-rw-idmapped).
    rewriteInPlace(src, text, HOST_ID_BASE);
    return { src, dst: `/etc/${name}` };
  });
}

/**
 * Writes `text` over the start of the file and cuts it there: the file keeps its first block, so a
 * rename (setHostname) still works when the capsule has filled its disk. Owned by `owner` (root inside).
 */
function rewriteInPlace(path: string, text: string, owner: number): void {
  // Created when missing, never truncated first (and no O_APPEND: it would ignore the position).
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  try {
    const data = Buffer.from(text);
    writeSync(fd, data, 0, data.length, 0);
    ftruncateSync(fd, data.length);
    fchownSync(fd, owner, owner);
  } finally {
    closeSync(fd);
  }
}
