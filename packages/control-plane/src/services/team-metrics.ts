// A team's sandbox activity over time, as E2B's /teams/{teamID}/metrics answers it: at each step
// of the range, how many of its capsules existed (created, not yet destroyed: paused ones count)
// and how many were started per second during that step. Computed from the capsule rows' creation
// and stop times, so it covers every capsule the database still holds.
import type { ControlPlaneContext } from '../context.js';
import { capsuleLifespans } from '../db/repositories/capsules.js';

export interface TeamMetricPoint {
  timestamp: Date;
  concurrentSandboxes: number;
  sandboxStartRate: number;
}

/** One point per step from `start` to `end` (the step's end is the point's time). */
export async function teamMetrics(
  ctx: ControlPlaneContext,
  teamId: string,
  start: Date,
  end: Date,
  stepMs: number,
): Promise<TeamMetricPoint[]> {
  const from = start.getTime();
  const to = end.getTime();
  const spans = await capsuleLifespans(ctx.database.db, teamId, from - stepMs, to);
  const points: TeamMetricPoint[] = [];
  for (let t = from; t <= to; t += stepMs) {
    let alive = 0;
    let started = 0;
    for (const s of spans) {
      if (s.createdAt <= t && (s.stoppedAt === null || s.stoppedAt > t)) alive++;
      if (s.createdAt > t - stepMs && s.createdAt <= t) started++;
    }
    points.push({ timestamp: new Date(t), concurrentSandboxes: alive, sandboxStartRate: started / (stepMs / 1000) });
  }
  return points;
}
