// The agent's edge checks: a request from the control plane (or any caller of the Connect service)
// is held against the capsule contract of @wrenn/protocol once, here, as InvalidArgument; the
// manager and the runtimes then trust it. What only this host can judge (its CPU and memory, its
// templates and runtimes) stays with the manager.
import { cpus, totalmem } from 'node:os';
import { capsuleRequestProblem, timeoutProblem } from '@wrenn/protocol';
import { InvalidArgumentError } from './errors.js';
import type { CreateCapsuleInput } from './manager.js';

export const TEMPLATE_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const refuse = (problem: string | undefined): void => {
  if (problem) throw new InvalidArgumentError(problem);
};

export function checkTemplateName(name: string): void {
  if (!TEMPLATE_NAME_RE.test(name)) {
    throw new InvalidArgumentError(
      `template name "${name}" is invalid: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

export function checkRange(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be a whole number from ${min} to ${max}, got ${value}`);
  }
}

export function hostLimits(): { maxVcpus: number; maxMemoryMb: number } {
  return { maxVcpus: Math.max(1, cpus().length), maxMemoryMb: Math.floor(totalmem() / (1 << 20)) };
}

export const checkTimeout = (timeoutSec: number | undefined): void => refuse(timeoutProblem(timeoutSec));

/** A create request against the contract, plus envd's default working directory (absolute). */
export function checkCreateRequest(input: CreateCapsuleInput): void {
  refuse(capsuleRequestProblem(input));
  const workdir = input.defaultWorkdir;
  if (workdir !== undefined && (!workdir.startsWith('/') || workdir.includes('\0') || workdir.length > 4096)) {
    throw new InvalidArgumentError(`default_workdir "${workdir}" must be an absolute path`);
  }
}
