// The contract's rules (@wrenn/protocol) applied to what the APIs pass in, thrown as
// InvalidArgument: both APIs create, exec and resume through these, so a request is judged once.
import {
  capsuleRequestProblem,
  commandTimeoutProblem,
  envsProblem,
  InvalidArgumentError,
  idempotencyKeyProblem,
  metadataProblem,
  timeoutProblem,
} from '@wrenn/protocol';
import { TIMEOUT_ACTIONS } from '../../db/repositories/capsules.js';
import type { CreateCapsuleInput } from './create.js';

const refuse = (problem: string | undefined): void => {
  if (problem) throw new InvalidArgumentError(problem);
};

export function validateEnvs(envs: unknown, field = 'env'): Record<string, string> {
  refuse(envsProblem(envs, field));
  return (envs ?? {}) as Record<string, string>;
}

/** A command's own timeout (exec and the streamed command protocols). */
export const validateCommandTimeout = (value: unknown): void => refuse(commandTimeoutProblem(value));

export function validateMetadata(metadata: unknown, field = 'metadata'): Record<string, string> {
  refuse(metadataProblem(metadata, field));
  return (metadata ?? {}) as Record<string, string>;
}

/** A create's Idempotency-Key header (create-once.ts). */
export const validateIdempotencyKey = (key: string): void => refuse(idempotencyKeyProblem(key));

export function validateCreate(input: CreateCapsuleInput): void {
  if (input.timeoutAction !== undefined && !(TIMEOUT_ACTIONS as readonly string[]).includes(input.timeoutAction)) {
    throw new InvalidArgumentError(
      `timeout_action must be one of ${TIMEOUT_ACTIONS.join(', ')}, got '${input.timeoutAction}'`,
    );
  }
  // The network policy's syntax too; which private ranges may be named is the host agent's to say (also a 400).
  refuse(capsuleRequestProblem(input));
}

/** A capsule's timeout in seconds (0: never), as given to resume. */
export const validateTimeout = (value: number | undefined): void => refuse(timeoutProblem(value));
