// The fork part of the capsule contract: how many capsules one fork request may make, what it
// defaults to, and what each runtime keeps of the source. A fork copies a running capsule once
// and starts `count` new capsules from that copy; the source keeps running.
import { timeoutProblem } from './rules.js';
import type { RuntimeName } from './states.js';

export const FORK_LIMITS = {
  /** Capsules one fork request makes (all from the same copy of the source). */
  maxCount: 16,
} as const;

export const FORK_DEFAULTS = {
  count: 1,
  /** The E2B API's default lifetime of a fork, in seconds (E2B's SandboxForkRequest.timeout). */
  e2bTimeoutSec: 15,
} as const;

/**
 * Whether a fork on this runtime starts with fresh processes: the namespace runtime copies the
 * filesystem only (the fork boots its own init and envd), the VM runtimes restore the source's
 * memory, so its processes run on in each fork.
 */
export const forkRestartsProcesses = (runtime: RuntimeName | string): boolean => runtime === 'namespace';

/** The rules of a fork request (count, timeout_sec), first problem first, or undefined. */
export function forkRequestProblem(
  req: { count?: number; timeoutSec?: number },
  timeoutField = 'timeout_sec',
): string | undefined {
  const { count } = req;
  if (count !== undefined && !(Number.isInteger(count) && count >= 1 && count <= FORK_LIMITS.maxCount))
    return `count must be a whole number from 1 to ${FORK_LIMITS.maxCount}, got ${count}`;
  return timeoutProblem(req.timeoutSec, timeoutField);
}
