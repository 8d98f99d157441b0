// Capsule lifecycle states and the moves between them. Anything else is refused with a clear error.
import { type CapsuleState, FailedPreconditionError } from '@wrenn/protocol';

export type { CapsuleState };

const moves: Record<CapsuleState, readonly CapsuleState[]> = {
  starting: ['running', 'error', 'stopped'],
  running: ['paused', 'hibernated', 'stopped', 'error'],
  paused: ['running', 'stopped', 'error'],
  hibernated: ['starting', 'running', 'stopped', 'error'],
  stopped: [],
  error: ['stopped'],
};

/** A move the capsule's state does not allow: failed_precondition at every edge. */
export class IllegalStateError extends FailedPreconditionError {
  constructor(
    readonly id: string,
    readonly from: CapsuleState,
    readonly action: string,
  ) {
    super(`capsule ${id} is ${from}; cannot ${action} it${hint(from, action)}`);
  }
}

function hint(from: CapsuleState, action: string): string {
  if (from === 'paused' && action !== 'resume') return ' (resume it first)';
  if (from === 'hibernated' && action !== 'resume') return ' (resume it first)';
  if (from === 'running' && action === 'resume') return ' (it is already running)';
  if (from === 'stopped') return ' (it was destroyed; create a new one)';
  return '';
}

export function canMove(from: CapsuleState, to: CapsuleState): boolean {
  return moves[from].includes(to);
}

/** Throws IllegalStateError unless `from -> to` is a legal move. */
export function assertMove(id: string, from: CapsuleState, to: CapsuleState, action: string): void {
  if (!canMove(from, to)) throw new IllegalStateError(id, from, action);
}
