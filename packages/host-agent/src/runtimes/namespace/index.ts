// The namespace capsule runtime (Linux namespaces + cgroup v1 + overlayfs; no VM).

export { CapsuleCgroups, CONTROLLERS, DEFAULT_CGROUP_PARENT, listCapsuleCgroupIds, removeCgroupParentIfEmpty } from './cgroups.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { execInCapsule } from './exec.js';
export type { CreateTimings, NamespaceRuntimeOptions, NamespaceState } from './namespace-runtime.js';
export { ENVD_PORT, NamespaceRuntime, readStartTime } from './namespace-runtime.js';
export { defaultAppDir, GUEST_APP, GUEST_RUNTIME, resolveNodeRuntime } from './node-runtime.js';
export { buildNsinit, NSINIT_BINARY, NSINIT_SOURCE, nsinitPath } from './nsinit-binary.js';
