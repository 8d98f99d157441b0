// The time range of E2B's metrics routes (/sandboxes/{id}/metrics, /teams/{id}/metrics): `start`
// and `end` in unix seconds, checked as E2B checks them, and one point per step, with E2B's steps
// (5 s under an hour up to 15 min past a week) so a range never answers more than ~2000 points.
import { InvalidArgumentError } from '@wrenn/protocol';

/** E2B's step for a range (clickhouse utils CalculateStep). */
export function metricsStepMs(startMs: number, endMs: number): number {
  const h = 3_600_000;
  const d = endMs - startMs;
  if (d < h) return 5_000;
  if (d < 6 * h) return 30_000;
  if (d < 12 * h) return 60_000;
  if (d < 24 * h) return 120_000;
  if (d < 7 * 24 * h) return 300_000;
  return 900_000;
}

/** The range asked for, unix seconds, with defaults; 400 when start lies after end. */
export function metricsRange(q: { start?: number; end?: number }, defaults: { start: Date; end: Date }) {
  const start = q.start !== undefined ? new Date(q.start * 1000) : defaults.start;
  const end = q.end !== undefined ? new Date(q.end * 1000) : defaults.end;
  if (start.getTime() > end.getTime())
    throw new InvalidArgumentError(
      `Invalid time range for metrics: start (${start.toISOString()}) is after end (${end.toISOString()})`,
    );
  return { start, end };
}

/** The newest of the samples in each step of the range, oldest step first. */
export function lastPerStep<T>(samples: readonly T[], at: (s: T) => number, startMs: number, endMs: number): T[] {
  const step = metricsStepMs(startMs, endMs);
  const out = new Map<number, T>();
  for (const s of samples) out.set(Math.floor((at(s) - startMs) / step), s);
  return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s);
}

/** Query fields of both routes: unix seconds (E2B's MaxDate64 ends in 2262; so does this). */
export const UNIX_SECONDS_MAX = 9_214_646_400;
