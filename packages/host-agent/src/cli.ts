// `wrenn agent`: the host agent on this machine, optionally registered with a control plane.
import pino from 'pino';
import type { RunningAgent } from './agent.js';
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
  const log = pino({ base: { svc: 'host-agent' } });
  const { agent, close } = await startLocalAgent({
    dataDir: opts.dataDir ?? '/var/lib/wrenn',
    listen: parseListen(opts.listen ?? '127.0.0.1:50051'),
    warmPool: parseWarmPool(opts.warmPool),
    log,
  });
  await hooks.onListening?.(agent);
  const stop = async () => {
    await close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
  await agent.terminated;
  await stop();
}
