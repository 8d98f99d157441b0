// Reconciler: keeps the database true to what the host agents run.

export { recordCapsuleDied } from './capsule-died.js';
export { type StateLoops, startLeasedStateLoops, startStateLoops } from './loops.js';
export {
  type ReconcileReport,
  Reconciler,
  type ReconcilerOptions,
  type StateSync,
  startReconciler,
} from './reconciler.js';
export { fromAgentState, HOST_UNREACHABLE_ERROR, isHostUnreachableError } from './states.js';
