// Reconciler: keeps the database true to what the host agents run.
export { Reconciler, startReconciler, type ReconcilerOptions, type ReconcileReport, type StateSync } from './reconciler.js';
export { fromAgentState, HOST_UNREACHABLE_ERROR, isHostUnreachableError } from './states.js';
export { startStateLoops, type StateLoops } from './loops.js';
export { recordCapsuleDied } from './capsule-died.js';
