// `wrenn agent`: the host agent on this machine, optionally registered with a control plane.
import pino from 'pino';
import type { RunningAgent } from './agent.js';
import type { AgentTlsSource } from './auth/agent-tls.js';
import { startLocalAgent } from './local-agent.js';

export function parseListen(value: string, flag = '--listen'): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new Error(`${flag} must be host:port (e.g. 127.0.0.1:50051), got "${value}"`);
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port };
}

/** "minimal=2,base=1" -> { minimal: 2, base: 1 }. */
export function parseWarmPool(value: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (value ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([a-z0-9][a-z0-9._-]{0,62})=(\d{1,3})$/.exec(part);
    if (!m)
      throw new Error(`--warm-pool takes template=count pairs separated by commas (e.g. minimal=2), got "${part}"`);
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

/**
 * `--tls self-signed|off` with `--tls-cert`/`--tls-key`: a remote agent serves TLS by default
 * (a certificate made once under its data dir); files given win; `off` serves plain HTTP/h2c.
 */
export function parseAgentTls(o: {
  tls?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}): AgentTlsSource | undefined {
  const mode = o.tls ?? 'self-signed';
  if (mode !== 'self-signed' && mode !== 'off') throw new Error(`--tls must be self-signed or off, got "${mode}"`);
  if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new Error('--tls-cert and --tls-key go together');
  if (o.tlsCert && o.tlsKey) {
    if (mode === 'off') throw new Error('--tls off cannot be combined with --tls-cert/--tls-key');
    return { certFile: o.tlsCert, keyFile: o.tlsKey };
  }
  return mode === 'off' ? undefined : 'self-signed';
}

/** WRENN_AGENT_STOP_TIMEOUT_MS: how long a shutdown may take before the agent exits anyway (default 60 s). */
export function parseStopTimeout(value: string | undefined): number {
  if (value === undefined || value === '') return 60_000;
  const n = Number(value);
  if (!/^\d{1,9}$/.test(value) || n < 1000)
    throw new Error(`WRENN_AGENT_STOP_TIMEOUT_MS must be milliseconds, at least 1000, got "${value}"`);
  return n;
}

export interface AgentCliHooks {
  /** Runs once the agent listens (the CLI registers it with a control plane here). */
  onListening?(agent: RunningAgent): Promise<void>;
}

export async function runAgentFromCli(
  opts: Record<string, string | undefined>,
  hooks: AgentCliHooks = {},
): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('the host agent needs root (namespaces, cgroups, network); run it with sudo');
  const tls = parseAgentTls(opts);
  const stopTimeoutMs = parseStopTimeout(process.env.WRENN_AGENT_STOP_TIMEOUT_MS);
  const log = pino({ base: { svc: 'host-agent' } });
  const { agent, close } = await startLocalAgent({
    ...(tls ? { tls } : {}),
    dataDir: opts.dataDir ?? '/var/lib/wrenn',
    listen: parseListen(opts.listen ?? '127.0.0.1:50051'),
    warmPool: parseWarmPool(opts.warmPool),
    log,
  });
  try {
    await hooks.onListening?.(agent);
  } catch (err) {
    // A refused registration ends the command: what the agent built at start (its pre-built
    // capsule networks, listeners) goes with it rather than staying behind on the host.
    await close().catch(() => undefined);
    throw err;
  }
  // Bounded: a shutdown that does not finish (a runtime that does not let go of a capsule) must
  // not keep the agent's address and host forever; a second SIGTERM or SIGINT ends it at once.
  const stop = async () => {
    log.info('host agent shutting down');
    setTimeout(() => {
      log.error(
        { seconds: stopTimeoutMs / 1000 },
        'host agent shutdown did not finish in time (the lines before say what it waited for); exiting anyway',
      );
      process.exit(1);
    }, stopTimeoutMs).unref();
    await close();
    log.info('host agent stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
  await agent.terminated;
  await stop();
}
