// The closed word lists of the capsule contract: lifecycle states, timeout actions, pause modes
// and runtimes. Types are derived from the lists, so a new word is added in one place.

export const CAPSULE_STATES = ['starting', 'running', 'paused', 'hibernated', 'stopped', 'error'] as const;
export type CapsuleState = (typeof CAPSULE_STATES)[number];

/** States in which a capsule still exists somewhere (on its host's disk at least). */
export const LIVE_CAPSULE_STATES: readonly CapsuleState[] = ['starting', 'running', 'paused', 'hibernated'];
/** States that hold a host's CPU and memory. */
export const ACTIVE_CAPSULE_STATES: readonly CapsuleState[] = ['starting', 'running', 'paused'];
/** States a capsule never leaves. */
export const FINAL_CAPSULE_STATES: readonly CapsuleState[] = ['stopped', 'error'];

/** What the API does when a capsule's timeout passes. */
export const TIMEOUT_ACTIONS = ['kill', 'pause', 'hibernate'] as const;
export type TimeoutAction = (typeof TIMEOUT_ACTIONS)[number];
export const DEFAULT_TIMEOUT_ACTION: TimeoutAction = 'kill';

export const PAUSE_MODES = ['freeze', 'hibernate'] as const;
export type PauseMode = (typeof PAUSE_MODES)[number];

export const RUNTIME_NAMES = ['namespace', 'qemu', 'firecracker'] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];
