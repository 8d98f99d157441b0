// Port forwarder: every second, finds TCP servers in the capsule that listen only on loopback and
// exposes each on the capsule's external address with the same port, so the host (and the proxy
// behind it) reaching <capsuleIp>:<port> reaches the server. Stops the forward when the server goes.
import { ENVD_PORT } from '../version.js';
import { externalIPv4 } from './addresses.js';
import { planForwards } from './plan.js';
import { readTcpListeners } from './proc-net-tcp.js';
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
  intervalMs?: number;
  /**
   * Delay of the first scan (default: intervalMs). Not at once: a new capsule listens on nothing
   * but envd, and a scan then (plus compiling its code) would slow the capsule's first command.
   */
  firstScanMs?: number;
  /** Structured log sink; default: JSON lines on stderr. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** Where net/tcp and net/tcp6 are read (tests). */
  procNet?: string;
}

export interface PortForwarder {
  stop(): void;
  list(): ForwardInfo[];
  /** Scans now instead of waiting for the next tick (resolves when the forwards are updated). */
  scan(): Promise<void>;
}

function stderrLog(msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ level: 'info', component: 'port-forwarder', msg, ...fields })}\n`);
}

export function startPortForwarder(opts: PortForwarderOptions = {}): PortForwarder {
  const intervalMs = opts.intervalMs ?? 1000;
  if (!(intervalMs > 0)) throw new Error(`intervalMs must be a positive number of milliseconds, got ${intervalMs}`);
  const excludePorts = new Set([ENVD_PORT, ...(opts.excludePorts ?? [])]);
  const log = opts.log ?? stderrLog;
  const forwards = new Map<number, TcpForward>();
  // Ports whose forward failed to open, with the error, so a persistent failure is logged once.
  const failures = new Map<number, string>();
  let stopped = false;
  let running: Promise<void> | undefined;

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
    const listeners = await readTcpListeners(opts.procNet);
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
              log('port forward failed; retrying every scan', { port, address: external, target, error: err.message });
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

  // The timer skips a tick while a scan is still running rather than queueing scans up.
  const timer = setInterval(() => {
    if (inFlight === 0) void scan();
  }, intervalMs);
  timer.unref();
  const firstScanMs = opts.firstScanMs ?? intervalMs;
  const first = firstScanMs > 0 && firstScanMs < intervalMs ? setTimeout(() => void scan(), firstScanMs) : undefined;
  first?.unref();
  if (firstScanMs <= 0) void scan();

  return {
    list,
    scan,
    stop() {
      stopped = true;
      clearInterval(timer);
      if (first) clearTimeout(first);
      for (const port of [...forwards.keys()]) closeForward(port, 'forwarder stopped');
    },
  };
}
