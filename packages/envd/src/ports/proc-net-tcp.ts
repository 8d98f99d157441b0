// Reads the TCP sockets in LISTEN state from /proc/net/tcp and /proc/net/tcp6. These files show the
// sockets of the reader's network namespace, so envd inside a capsule sees exactly the capsule's.
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { formatAddress } from './addresses.js';

export interface TcpListener {
  family: 4 | 6;
  /** Textual address (IPv6 in canonical compressed form, IPv4-mapped as ::ffff:a.b.c.d). */
  address: string;
  port: number;
}

const LISTEN = '0A';
const LITTLE_ENDIAN = endianness() === 'LE';

/** The kernel prints each 32-bit word of the address as a host-order number; returns network order. */
function wordsToBytes(hex: string): Buffer {
  const bytes = Buffer.from(hex, 'hex');
  if (LITTLE_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}

/** Parses the text of /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6); keeps LISTEN sockets. */
export function parseProcNetTcp(text: string, family: 4 | 6): TcpListener[] {
  const out: TcpListener[] = [];
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const fields = lines[i]!.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== LISTEN) continue;
    const [addrHex, portHex] = (fields[1] ?? '').split(':');
    if (!addrHex || !portHex) continue;
    const bytes = wordsToBytes(addrHex);
    const port = Number.parseInt(portHex, 16);
    if (bytes.length === (family === 4 ? 4 : 16)) out.push({ family, address: formatAddress(bytes), port });
  }
  return out;
}

/** All listening TCP sockets of this network namespace, deduplicated (SO_REUSEPORT groups show once). */
export async function readTcpListeners(procNet = '/proc/net'): Promise<TcpListener[]> {
  const read = (name: string) => readFile(`${procNet}/${name}`, 'utf8').catch(() => ''); // tcp6 is absent without IPv6
  const [v4, v6] = await Promise.all([read('tcp'), read('tcp6')]);
  return uniqueListeners([...parseProcNetTcp(v4, 4), ...parseProcNetTcp(v6, 6)]);
}

/** One entry per family, address and port (an SO_REUSEPORT group lists each of its sockets). */
export function uniqueListeners(listeners: TcpListener[]): TcpListener[] {
  const seen = new Map<string, TcpListener>();
  for (const l of listeners) seen.set(`${l.family} ${l.address} ${l.port}`, l);
  return [...seen.values()];
}
