// Capsule states as the host agent reports them (protobuf enum) and as the database stores them.
import { CapsuleState as PbState } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { CapsuleState } from '../db/repositories/capsules.js';

export function fromAgentState(s: PbState): CapsuleState {
  switch (s) {
    case PbState.STARTING:
      return 'starting';
    case PbState.RUNNING:
      return 'running';
    case PbState.PAUSED:
      return 'paused';
    case PbState.HIBERNATED:
      return 'hibernated';
    case PbState.STOPPED:
      return 'stopped';
    case PbState.ERROR:
      return 'error';
    default:
      return 'error';
  }
}

/** States in which a capsule should exist on its host. */
export const ON_HOST_STATES: readonly CapsuleState[] = ['starting', 'running', 'paused', 'hibernated'];

/**
 * Prefix of the error of capsules whose host stopped answering. Such a capsule is in state `error`
 * but not given up: if its host comes back still holding it, the reconciler restores its state.
 */
export const HOST_UNREACHABLE_ERROR = 'host unreachable';

export const isHostUnreachableError = (error: string | null): boolean =>
  error?.startsWith(HOST_UNREACHABLE_ERROR) ?? false;
