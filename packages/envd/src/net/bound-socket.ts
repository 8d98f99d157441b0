// A listening socket bound by @wrenn/native (listenTcp) for server.listen({ fd }). Since Node 22,
// server.listen(port, host) resolves the host (dns.lookup) and passes the result through
// isIpv6LinkLocal, which runs node's large IPv6 regular expression: its first use in a process
// costs 4-18 ms of CPU on the reference machine, and every envd start (one per capsule create)
// paid it. Binding in the addon skips node's resolution; the addon is loaded right after envd is
// ready anyway (native spawn), so its load only moves earlier.
// Why not a socket bound by the capsule's init and inherited: an inherited fd is not close-on-exec,
// so every process envd starts through child_process or node-pty would hold envd's listening
// socket; and the VMs' init is a busybox shell, which cannot bind one. The addon's socket is
// close-on-exec and works the same in every runtime, on the host and in tests.
// Falls back to node's own listen (null) where the addon cannot be loaded, for a host name, or
// with WRENN_BOUND_SOCKET=0 (for comparisons). Inside capsules the bundle's start.cjs binds it
// before envd loads and says ready on it (why: its sayReadyOnceListening); envd's listener takes
// that one (takeEarlySocket).
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import type { NativeBinding } from '@wrenn/native';

type ListenBinding = Pick<NativeBinding, 'listenTcp'>;

/** Where the bundle's start.cjs leaves the socket it bound before envd loaded (its sayReadyOnceListening). */
const EARLY_SOCKET = Symbol.for('wrenn.envd.boundSocket');

/**
 * The socket start.cjs bound and announced "ready" on, once, if it is for this host and port;
 * another one is closed (its port then stays free for the listen that follows). For envd's own
 * listener only (dual-listener.ts): the port forwards bind theirs with boundSocket.
 */
export function takeEarlySocket(host: string, port: number): number | null {
  const slot = globalThis as unknown as Record<symbol, unknown>;
  const early = slot[EARLY_SOCKET] as { fd?: unknown; host?: unknown; port?: unknown } | undefined;
  if (early === undefined) return null;
  delete slot[EARLY_SOCKET];
  if (typeof early?.fd !== 'number' || !Number.isInteger(early.fd) || early.fd < 0) return null;
  if (early.host === host && early.port === port) return early.fd;
  closeSync(early.fd);
  return null;
}

/** node's default backlog for listen(). */
const BACKLOG = 511;

/**
 * A listening socket's fd on `host`:`port`, or null when node's own listen should do it. Errors
 * of the bind itself (EADDRINUSE, EACCES...) are thrown with node's `code`, as listen would emit them.
 */
export function boundSocket(host: string, port: number): number | null {
  if (process.env.WRENN_BOUND_SOCKET === '0') return null;
  let b: Partial<ListenBinding>;
  try {
    // In the bundle this resolves node_modules/@wrenn/native next to envd.cjs; in the repo, the workspace package.
    b = createRequire(import.meta.url)('@wrenn/native/addon') as Partial<ListenBinding>;
  } catch {
    return null; // native-spawn says once on stderr that the addon is missing
  }
  if (typeof b.listenTcp !== 'function') return null; // an addon built before listenTcp
  try {
    return b.listenTcp(host, port, BACKLOG);
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (typeof errno !== 'number') throw err;
    const code = getSystemErrorName(-errno);
    throw Object.assign(new Error(`listen ${code}: address ${host}:${port} (${(err as Error).message})`), {
      code,
      errno: -errno,
      syscall: 'listen',
      address: host,
      port,
    });
  }
}
