// The namespace capsule runtime (Linux namespaces + cgroup v1 + overlayfs; no VM).

export {
  CapsuleCgroups,
  CONTROLLERS,
  DEFAULT_CGROUP_PARENT,
  listCapsuleCgroupIds,
  removeCgroupParentIfEmpty,
} from './cgroups.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { execInCapsule } from './exec.js';
export { CAPSULE_NOFILE, raiseFileMax } from './file-table.js';
export type { IdRange, IdRangeConfig } from './id-ranges.js';
export { DEFAULT_CAPSULE_ID_BASE, DEFAULT_CAPSULE_ID_RANGES, IdRangeStore, idRangeConfig } from './id-ranges.js';
export type { CreateTimings, NamespaceRuntimeOptions, NamespaceState } from './namespace-runtime.js';
export { capsuleRootId, ENVD_PORT, NamespaceRuntime, readStartTime } from './namespace-runtime.js';
export { defaultAppDir, GUEST_APP, GUEST_RUNTIME, resolveNodeRuntime } from './node-runtime.js';
export { buildNsinit, NSINIT_BINARY, NSINIT_SOURCE, nsinitPath } from './nsinit-binary.js';
