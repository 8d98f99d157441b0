// A capsule's resource use (CPU, memory, disk, processes) as its agent measures it right now.
import type { ControlPlaneContext } from '../../context.js';
import { metricsFromAgent } from './agent-mapping.js';
import { capsuleAgent } from './lookup.js';

export interface CapsuleMetrics {
  cpuUsedPct: number;
  cpuCount: number;
  memUsedBytes: number;
  memTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
  pids: number;
  timestamp: Date;
}

/** CPU, memory, disk and process counts of a running or paused capsule. */
export async function capsuleMetrics(ctx: ControlPlaneContext, teamId: string, id: string): Promise<CapsuleMetrics> {
  const { agent } = await capsuleAgent(ctx, teamId, id, ['running', 'paused'], 'read the metrics of');
  return metricsFromAgent(await agent.getCapsuleMetrics({ id }));
}
