// Port forwarder: finds TCP servers in the capsule that listen only on loopback and exposes each on
// the capsule's external address with the same port, so the host (and the proxy behind it)
// reaching <capsuleIp>:<port> reaches the server. Stops the forward when the server goes.
// At each beat of envd's heartbeat (every 750 ms while envd is active or another process exists in
// the capsule, none at all once quiet with nothing else running; see heartbeat.ts) it reads the namespace's TCP socket counts (sockstat, O(1)) and, when they moved,
// lists the listeners with a LISTEN-only sock_diag dump (the kernel walks only its listening hash,
// never the host-wide established hash that makes a /proc/net/tcp read cost milliseconds), or,
// without sock_diag, reads /proc/net/tcp.
import { Heartbeat } from '../heartbeat.js';
import { ENVD_PORT } from '../version.js';
import { externalIPv4 } from './addresses.js';
import { loadSockDiag, readTcpListenersDiag, type SockDiagBinding } from './inet-diag.js';
import { planForwards } from './plan.js';
import { readTcpListeners, type TcpListener } from './proc-net-tcp.js';
import { SockstatReader } from './sockstat.js';
import { openTcpForward, type TcpForward } from './tcp-forward.js';

export interface ForwardInfo {
  port: number;
  /** Address the forward listens on (the capsule's external address). */
  address: string;
  /** Loopback address of the server it forwards to. */
  target: string;
}

export interface PortForwarderOptions {
  /** Called with the full list after any forward starts or stops. */
  onChange?: (forwards: ForwardInfo[]) => void;
  /** Ports never forwarded; envd's own port always is excluded. */
  excludePorts?: number[];
  /** Listen address for the forwards; default: the first non-loopback IPv4 address, re-read each scan. */
  address?: string;
  /** Beat period of the forwarder's own heartbeat when `heartbeat` is not given (no slowing down). */
  intervalMs?: number;
  /** The heartbeat to scan on (envd passes its own); its activity brings the scan back to 1 s. */
  heartbeat?: Heartbeat;
  /**
   * Delay of the first scan (default: intervalMs). Not at once: a new capsule listens on nothing
   * but envd, and a scan then (plus compiling its code) would slow the capsule's first command.
   */
  firstScanMs?: number;
  /** Structured log sink; default: JSON lines on stderr. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /**
   * Where sockstat, net/tcp and net/tcp6 are read (tests). When set, listeners come from net/tcp
   * only, never from sock_diag.
   */
  procNet?: string;
  /**
   * A full scan at least this often even when nothing seemed to change (the external address may
   * change; without sock_diag, a connection closing while a server opens leaves the counts equal).
   * Default 120 s (with sock_diag or without, when a /proc/net/tcp read costs milliseconds on a big host).
   */
  resyncMs?: number;
}

export interface PortForwarder {
  stop(): void;
  list(): ForwardInfo[];
  /** Scans now instead of waiting for the next tick (resolves when the forwards are updated). */
  scan(): Promise<void>;
}

/** The set of listeners as one comparable string. */
function listenersKey(listeners: TcpListener[]): string {
  return listeners
    .map((l) => `${l.family}/${l.address}/${l.port}`)
    .sort()
    .join(',');
}

/** Longest a sock_diag listing is trusted while the namespace's TCP socket counts stay the same. */
const DIAG_RECHECK_MS = 60_000;

function stderrLog(msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ level: 'info', component: 'port-forwarder', msg, ...fields })}\n`);
}

export function startPortForwarder(opts: PortForwarderOptions = {}): PortForwarder {
  const intervalMs = opts.heartbeat?.periodMs ?? opts.intervalMs ?? 1000;
  if (!(intervalMs > 0)) throw new Error(`intervalMs must be a positive number of milliseconds, got ${intervalMs}`);
  const heartbeat = opts.heartbeat ?? new Heartbeat({ periodMs: intervalMs, maxPeriodMs: intervalMs });
  const excludePorts = new Set([ENVD_PORT, ...(opts.excludePorts ?? [])]);
  const log = opts.log ?? stderrLog;
  const forwards = new Map<number, TcpForward>();
  // Ports whose forward failed to open, with the error, so a persistent failure is logged once.
  const failures = new Map<number, string>();
  let stopped = false;
  let running: Promise<void> | undefined;
  const sockstat = new SockstatReader(opts.procNet);
  // undefined: not loaded yet (at the first scan, not at start-up: envd's start is a capsule's boot).
  let diag: SockDiagBinding | null | undefined = opts.procNet === undefined ? undefined : null;
  let diagError: string | undefined;

  // The last sock_diag dump: the counts read just before it, its listeners as a key, and when.
  const lastDiag: { counts: string | undefined; key: string | undefined; at: number } = {
    counts: undefined,
    key: undefined,
    at: 0,
  };
  const remember = (counts: string | undefined, found: TcpListener[]) => {
    lastDiag.counts = counts;
    lastDiag.key = `diag ${listenersKey(found)}`;
    lastDiag.at = Date.now();
  };

  /** The namespace's listening sockets: a sock_diag dump when the addon and kernel have it, else /proc. */
  async function readListeners(): Promise<TcpListener[]> {
    if (diag === undefined) diag = loadSockDiag() ?? null;
    if (diag) {
      try {
        const counts = sockstat.key(); // before the dump: a socket hashed after it moves the counts
        const found = readTcpListenersDiag(diag);
        remember(counts, found);
        return found;
      } catch (err) {
        const message = (err as Error).message;
        if (diagError !== message) log('sock_diag listing failed; reading /proc/net/tcp instead', { error: message });
        diagError = message;
      }
    }
    return readTcpListeners(opts.procNet);
  }

  const list = (): ForwardInfo[] =>
    [...forwards.values()]
      .map((f) => ({ port: f.port, address: f.listenHost, target: f.targetHost }))
      .sort((a, b) => a.port - b.port);

  function closeForward(port: number, reason: string): void {
    const f = forwards.get(port);
    if (!f) return;
    f.close();
    forwards.delete(port);
    log('port forward stopped', { port, address: f.listenHost, target: f.targetHost, reason });
  }

  async function scanOnce(): Promise<void> {
    const external = opts.address ?? externalIPv4();
    let changed = false;
    for (const [port, f] of forwards) {
      if (f.listenHost !== external) {
        closeForward(port, 'external address changed');
        changed = true;
      }
    }
    if (!external) {
      if (changed) opts.onChange?.(list());
      return;
    }
    const listeners = await readListeners();
    if (stopped) return;
    const plan = planForwards({ listeners, external, forwarded: new Set(forwards.keys()), excludePorts });
    for (const [port, f] of forwards) {
      if (plan.get(port) !== f.targetHost) {
        closeForward(port, 'server stopped listening on loopback');
        changed = true;
      }
    }
    for (const port of failures.keys()) if (!plan.has(port)) failures.delete(port);
    const opening: Promise<void>[] = [];
    for (const [port, target] of plan) {
      if (forwards.has(port)) continue;
      opening.push(
        openTcpForward(external, port, target).then(
          (f) => {
            if (stopped) return f.close();
            forwards.set(port, f);
            failures.delete(port);
            changed = true;
            log('port forward started', { port, address: external, target });
          },
          (err: Error) => {
            if (failures.get(port) !== err.message)
              log('port forward failed; retrying every second', {
                port,
                address: external,
                target,
                error: err.message,
              });
            failures.set(port, err.message);
          },
        ),
      );
    }
    await Promise.all(opening);
    if (changed && !stopped) opts.onChange?.(list());
  }

  // One scan at a time; a scan asked for while one runs waits for it and then runs again.
  let inFlight = 0;
  function scan(): Promise<void> {
    inFlight++;
    const next = (running ?? Promise.resolve())
      .then(() => (stopped ? undefined : scanOnce()))
      .catch((err: Error) => log('port scan failed', { error: err.message }))
      .finally(() => {
        inFlight--;
      });
    running = next;
    return next;
  }

  // Each beat asks what changed, cheaply: the LISTEN-only sock_diag dump (exact; tens of µs, the
  // kernel walks only its listening hash), else the namespace's TCP socket counts (O(1), but a
  // connection closing while a server opens leaves them equal: the resync finds that). A scan
  // (external address, plan, forwards) runs only when that changed, a forward failed, or the last
  // scan is resyncMs old. A tick is skipped while a scan still runs rather than queueing scans up.
  //
  // The dump itself walks the host-wide listening hash, i.e. every capsule's listeners (measured:
  // tcp_diag_dump was a third of 1,000 idle envds' CPU), so it is gated too: it runs only when this
  // namespace's socket counts moved since the last dump, or when that dump is DIAG_RECHECK_MS old,
  // once envd is quiet (at every beat while it is active);
  // the full rescan (resync) runs every 120 s.
  let lastState: string | undefined;
  let lastScanAt = 0;
  const currentState = (): string | undefined => {
    if (diag === undefined) diag = loadSockDiag() ?? null;
    const counts = sockstat.key();
    if (diag && diagError === undefined) {
      // Only once quiet: while envd is active, connections come and go between beats, and one closing
      // as a server stops would leave the counts equal and a dead forward up.
      const quiet = heartbeat.quiet();
      const fresh = Date.now() - lastDiag.at < DIAG_RECHECK_MS;
      if (quiet && fresh && counts !== undefined && counts === lastDiag.counts) return lastDiag.key;
      try {
        const found = readTcpListenersDiag(diag);
        remember(counts, found);
        return lastDiag.key;
      } catch {
        // the scan logs it and falls back to /proc; from then on the counts gate
      }
    }
    return counts === undefined ? undefined : `counts ${counts}`;
  };
  const tick = () => {
    if (inFlight > 0 || stopped) return;
    const state = currentState();
    const now = Date.now();
    const resyncMs = opts.resyncMs ?? 120_000;
    const changed = state === undefined || state !== lastState || failures.size > 0;
    if (!changed && now - lastScanAt < resyncMs) return;
    // Listeners come and go: stay on the fast beat a while (more servers may be starting up).
    if (changed && lastState !== undefined) heartbeat.active();
    lastState = state;
    lastScanAt = now;
    void scan();
  };
  const stopBeat = heartbeat.on(tick);
  const firstScanMs = opts.firstScanMs ?? intervalMs;
  const first = firstScanMs > 0 && firstScanMs < intervalMs ? setTimeout(tick, firstScanMs) : undefined;
  first?.unref();
  if (firstScanMs <= 0) tick();

  return {
    list,
    scan,
    stop() {
      stopped = true;
      stopBeat();
      sockstat.close();
      if (first) clearTimeout(first);
      for (const port of [...forwards.keys()]) closeForward(port, 'forwarder stopped');
    },
  };
}
