// Lists the listening TCP sockets of this network namespace with a netlink sock_diag dump
// (@wrenn/native's inetDiagDump) filtered to LISTEN: the kernel then walks only its listening hash,
// never the established one that makes a /proc/net/tcp read cost milliseconds on a big host.
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { formatAddress } from './addresses.js';
import { type TcpListener, uniqueListeners } from './proc-net-tcp.js';

export interface SockDiagBinding {
  inetDiagDump(family: number, protocol: number, states: number): Buffer;
}

const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_TCP = 6;
const TCP_LISTEN = 10;
const SOCK_DIAG_BY_FAMILY = 20;
const NLMSG_HDRLEN = 16;
// struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (sport and dport in
// network order, src[16], dst[16], if, cookie[2]), expires, rqueue, wqueue, uid, inode.
const DIAG_MSG_LEN = 72;
const OFF_SPORT = 4;
const OFF_SRC = 8;

/** Parses the inet_diag_msg netlink messages of a dump (headers in host byte order, as the kernel wrote them). */
export function parseInetDiagMessages(buf: Buffer, littleEndian = endianness() === 'LE'): TcpListener[] {
  const u32 = (o: number) => (littleEndian ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const u16 = (o: number) => (littleEndian ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const out: TcpListener[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = u32(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length)
      throw new Error(`inet_diag: bad netlink message length ${len} at offset ${off}`);
    const type = u16(off + 4);
    if (type === SOCK_DIAG_BY_FAMILY && len >= NLMSG_HDRLEN + DIAG_MSG_LEN) {
      const m = off + NLMSG_HDRLEN;
      const family = buf[m];
      const port = buf.readUInt16BE(m + OFF_SPORT);
      if (buf[m + 1] === TCP_LISTEN && (family === AF_INET || family === AF_INET6)) {
        const bytes = buf.subarray(m + OFF_SRC, m + OFF_SRC + (family === AF_INET ? 4 : 16));
        out.push({ family: family === AF_INET ? 4 : 6, address: formatAddress(bytes), port });
      }
    }
    off += (len + 3) & ~3; // NLMSG_ALIGN
  }
  return out;
}

export function loadSockDiag(): SockDiagBinding | undefined {
  try {
    const b = createRequire(import.meta.url)('@wrenn/native/addon') as Partial<SockDiagBinding>;
    return typeof b.inetDiagDump === 'function' ? (b as SockDiagBinding) : undefined;
  } catch {
    return undefined;
  }
}

/** errno values with which a kernel says it has no IPv6 (or no inet_diag for it). */
const NO_FAMILY = new Set([2 /* ENOENT */, 22 /* EINVAL */, 97 /* EAFNOSUPPORT */]);

/** Listening TCP sockets, IPv4 and IPv6; throws when the IPv4 dump fails (no inet_diag here). */
export function readTcpListenersDiag(binding: SockDiagBinding): TcpListener[] {
  const states = 1 << TCP_LISTEN;
  const v4 = parseInetDiagMessages(binding.inetDiagDump(AF_INET, IPPROTO_TCP, states));
  let v6: TcpListener[] = [];
  try {
    v6 = parseInetDiagMessages(binding.inetDiagDump(AF_INET6, IPPROTO_TCP, states));
  } catch (err) {
    if (!NO_FAMILY.has((err as { errno?: number }).errno ?? 0)) throw err;
  }
  return uniqueListeners([...v4, ...v6]);
}
