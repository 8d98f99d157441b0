// A capsule's resource use (CPU, memory, disk, processes) as its agent measures it right now, and
// the samples its agent took of it every 5 s (for E2B's metrics over a time range).
import { type CapsuleMetrics, InvalidArgumentError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { metricsFromAgent } from './agent-mapping.js';
import { capsuleAgent } from './lookup.js';

export type { CapsuleMetrics };

/** CPU, memory, disk and process counts of a running or paused capsule. */
export async function capsuleMetrics(ctx: ControlPlaneContext, teamId: string, id: string): Promise<CapsuleMetrics> {
  const { agent } = await capsuleAgent(ctx, teamId, id, ['running', 'paused'], 'read the metrics of');
  return metricsFromAgent(await agent.getCapsuleMetrics({ id }));
}

/** The samples the capsule's agent took (every 5 s while it ran) from `start` to `end`, oldest first. */
export async function capsuleMetricsHistory(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  start: Date,
  end: Date,
): Promise<CapsuleMetrics[]> {
  if (end.getTime() < start.getTime())
    throw new InvalidArgumentError('the start of the range must not be after its end');
  const { agent } = await capsuleAgent(ctx, teamId, id, ['running', 'paused', 'hibernated'], 'read the metrics of');
  const r = await agent.getCapsuleMetricsHistory({
    id,
    startMs: BigInt(start.getTime()),
    endMs: BigInt(end.getTime()),
  });
  return r.samples.map(metricsFromAgent);
}
