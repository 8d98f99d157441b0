// Registers this agent with a control plane (one-time token); the control plane then polls it.
import type { Logger } from 'pino';
import type { RunningAgent } from './agent.js';

export async function registerWithControlPlane(o: { controlPlaneUrl: string; token: string | undefined; agent: RunningAgent; log: Logger; advertiseUrl?: string }): Promise<void> {
  if (!o.token) throw new Error('--token is required with --control-plane (create one with POST /v1/hosts/tokens)');
  const { cpus, totalmem } = await import('node:os');
  const res = await fetch(new URL('/v1/hosts/register', o.controlPlaneUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      token: o.token,
      host_id: o.agent.hostId,
      address: o.advertiseUrl ?? o.agent.url,
      runtimes: ['namespace'],
      cpu_count: cpus().length,
      memory_mb: Math.floor(totalmem() / (1 << 20)),
    }),
  });
  if (!res.ok) throw new Error(`registration with ${o.controlPlaneUrl} failed (${res.status}): ${await res.text()}`);
  o.log.info({ controlPlane: o.controlPlaneUrl }, 'registered with control plane');
}
